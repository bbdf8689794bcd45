using System.Collections.Immutable;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Decide;

/// <summary>Everything besides the container's own facts that decides what WhaleWall does with
/// it: the daemon's configuration. The daemon, <c>check</c>, <c>status</c> and <c>explain</c>
/// build one and hand it to <see cref="ContainerDecider.Decide"/>, so they cannot disagree.
/// <paramref name="Gateway"/>: deny-by-default mode (<c>GATEWAY_NETWORKS</c>,
/// <c>DEFAULT_OUTBOUND</c>), null when off.
/// Later settings (audit mode, the DNS proxy) are new members with a default here, read by
/// <see cref="FromSettings"/> from the same variables the daemon reads.</summary>
public sealed record DecisionContext(GatewayConfig? Gateway)
{
    /// <summary>No deny-by-default mode: only opted-in containers are managed.</summary>
    public static readonly DecisionContext Default = new((GatewayConfig?)null);

    /// <summary>The DNS proxy is on (<c>WHALEWALL_DNS_PROXY</c>, docs/dns-proxy.md): labels may
    /// use the wildcard grammar, <c>whalewall.dns.*</c> labels are checked, and each enforced
    /// container gets a <see cref="Decision.Dns"/> policy.</summary>
    public bool DnsProxy { get; init; }

    /// <summary><c>WHALEWALL_MODE</c>: the mode of every managed container whose labels do not
    /// say (<see cref="ContainerMode"/>).</summary>
    public PolicyMode Mode { get; init; }

    /// <summary><c>WHALEWALL_DNS_PROXY</c>: on unless "off" (or 0/false/no); null for an invalid value.</summary>
    public static bool? ProxySetting(string? value) => (value ?? "").Trim().ToLowerInvariant() switch
    {
        "" or "on" or "1" or "true" or "yes" => true,
        "off" or "0" or "false" or "no" => false,
        _ => null,
    };

    /// <summary>The context from the daemon's settings (environment variables or the flags of
    /// <c>check</c> that stand for them): deny-by-default mode is on when
    /// <paramref name="gatewayNetworks"/> is set at all (empty: every bridge network).
    /// Returns the problems instead of a context when a setting is invalid.</summary>
    public static (DecisionContext? Context, ImmutableArray<string> Errors) FromSettings(string? gatewayNetworks, string? defaultOutbound)
    {
        if (gatewayNetworks is null)
            return defaultOutbound is { Length: > 0 }
                ? (null, ["DEFAULT_OUTBOUND needs GATEWAY_NETWORKS (deny-by-default mode)"])
                : (Default, []);
        var gateway = GatewayConfig.Parse(gatewayNetworks, defaultOutbound);
        var errors = OutboundList.Parse(gateway.DefaultOutbound, "DEFAULT_OUTBOUND").Errors;
        return errors.IsEmpty ? (new DecisionContext(gateway), []) : (null, [.. errors.Select(e => e.ToString())]);
    }

    /// <summary>One line for logs and <c>check</c>: what this context turns on.</summary>
    public string Describe() => DescribeGateway() + (DnsProxy ? "; DNS proxy on" : "; DNS proxy off") +
        (Mode == PolicyMode.Audit ? "; AUDIT MODE (WHALEWALL_MODE=audit): nothing is dropped, would-be drops are counted" : "");

    private string DescribeGateway() => Gateway is not { } gw
        ? "opt-in only (no GATEWAY_NETWORKS)"
        : $"deny-by-default mode: gateway networks {(gw.AllBridges ? "(every bridge network)" : string.Join(",", gw.Include))}" +
          $"{(gw.Exclude.IsEmpty ? "" : " except " + string.Join(",", gw.Exclude))}, default outbound \"{gw.DefaultOutbound}\"";
}

/// <summary>The daemon's settings as it read them (its report carries them), so the CLI can
/// decide online with the daemon's context rather than its own shell's environment.</summary>
public sealed record DecisionSettings(string? GatewayNetworks, string? DefaultOutbound, bool DnsProxy, PolicyMode Mode)
{
    public System.Text.Json.Nodes.JsonObject ToJson() => new()
    {
        ["gateway_networks"] = GatewayNetworks,
        ["default_outbound"] = DefaultOutbound,
        ["dns_proxy"] = DnsProxy,
        ["mode"] = Mode == PolicyMode.Audit ? "audit" : "enforce",
    };

    /// <summary>The context these settings give; null when the report's entry is missing or unreadable.</summary>
    public static DecisionContext? ContextOf(System.Text.Json.Nodes.JsonNode? node)
    {
        try
        {
            if (node is not System.Text.Json.Nodes.JsonObject o) return null;
            var (context, errors) = DecisionContext.FromSettings(o["gateway_networks"]?.GetValue<string>(), o["default_outbound"]?.GetValue<string>());
            if (context is null || !errors.IsEmpty || ContainerMode.Parse(o["mode"]?.GetValue<string>()) is not { } mode) return null;
            return context with { DnsProxy = o["dns_proxy"]?.GetValue<bool>() ?? false, Mode = mode };
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException) { return null; }
    }
}
