using System.Collections.Immutable;
using WhaleWall.Firewall.Names;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Dns;

/// <summary>What a container asks for with <c>whalewall.dns.reject</c>: the answer to a name
/// it may not resolve. REFUSED by default (musl stops its search list there); NXDOMAIN for
/// software that treats REFUSED as a reason to retry elsewhere.</summary>
public enum RejectMode
{
    Refused,
    NxDomain,
}

/// <summary>
/// One container's DNS policy as the proxy applies it.
/// <see cref="Names"/>: the names and patterns of its rules (only they open addresses).
/// <see cref="ResolveAny"/>: it may RESOLVE any name (it has <c>_dns_</c> or a rule that
/// allows port 53), yet only <see cref="Names"/> open addresses.
/// <see cref="ExtraTypes"/>: query types allowed on top of A and AAAA.
/// </summary>
public sealed record DnsPolicy(NameMatcher Names, bool ResolveAny, RejectMode Reject, ImmutableHashSet<ushort> ExtraTypes)
{
    /// <summary>Audit mode: a query the policy would refuse (name or type) is forwarded anyway
    /// and counted as a would-be refusal; its answer opens nothing (the container's traffic
    /// passes in audit mode whatever the sets hold).</summary>
    public bool Audit { get; init; }

    public static readonly DnsPolicy Nothing = new(NameMatcher.Empty, false, RejectMode.Refused, []);

    public DnsRcode RejectRcode => Reject == RejectMode.NxDomain ? DnsRcode.NxDomain : DnsRcode.Refused;

    public bool AllowsType(ushort type) => type is DnsTypes.A or DnsTypes.AAAA || ExtraTypes.Contains(type);

    /// <summary>The DNS policy of a valid container policy: the <c>hosts:</c> of its rules
    /// (names the label parser accepted; anything else is skipped, never widened), and
    /// <see cref="ResolveAny"/> when a rule reaches port 53 (<c>_dns_</c>, or a TCP/UDP/any
    /// rule whose destination ports include 53 or are unrestricted).</summary>
    public static DnsPolicy From(ContainerPolicy policy, RejectMode reject, ImmutableHashSet<ushort> extraTypes)
    {
        var patterns = new List<NamePattern>();
        foreach (var rule in policy.Output)
            foreach (var host in rule.HostsOrEmpty)
                if (NamePattern.TryParse(host, out var pattern, out _)) patterns.Add(pattern);
        var resolveAny = policy.Output.Any(ReachesPort53);
        return new DnsPolicy(new NameMatcher(patterns), resolveAny, reject, extraTypes);
    }

    private static bool ReachesPort53(OutputRule rule)
    {
        if (rule.ToResolvers) return true;
        if (rule.Proto is not (null or L4Proto.Tcp or L4Proto.Udp)) return false;
        return rule.DstPorts.IsDefaultOrEmpty || rule.DstPorts.Any(p => p.Lo <= 53 && 53 <= p.Hi);
    }
}
