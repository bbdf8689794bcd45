using System.Collections.Immutable;

namespace WhaleWall.Firewall.Policy;

/// <summary>dockerwall's deny-by-default mode: containers on gateway networks are filtered
/// even without labels. <c>GATEWAY_NETWORKS</c> is a comma list of network names, <c>!name</c>
/// excludes one, and no names at all means every bridge network.</summary>
public sealed record GatewayConfig(ImmutableArray<string> Include, ImmutableArray<string> Exclude, string DefaultOutbound)
{
    public const string DefaultOutboundDefault = "_dns_";

    public bool AllBridges => Include.IsEmpty;

    public static GatewayConfig Parse(string networks, string? defaultOutbound)
    {
        var names = networks.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new GatewayConfig(
            [.. names.Where(n => !n.StartsWith('!'))],
            [.. names.Where(n => n.StartsWith('!')).Select(n => n[1..])],
            string.IsNullOrWhiteSpace(defaultOutbound) ? DefaultOutboundDefault : defaultOutbound.Trim());
    }

    public bool IsGateway(NetworkAttachment network) =>
        !Exclude.Contains(network.Name) && (AllBridges ? network.Driver == "bridge" : Include.Contains(network.Name));
}
