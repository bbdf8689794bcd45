namespace WhaleWall.Firewall.Policy;

/// <summary>How much a policy expands to, counted arithmetically (nothing is built), so that a
/// hostile label is refused before it costs memory or time. The compiler counts again with
/// the container's facts (its addresses, its peers', its resolvers) before it builds anything.</summary>
public static class PolicySize
{
    /// <summary>Most set elements one container may own. Each costs the kernel about a
    /// millisecond to delete from a large interval set (docs/nftables.md), so this also bounds
    /// what one container's change costs everyone else.</summary>
    public const int MaxElements = 4096;

    /// <summary>Est queue numbers are at most 15 bits: the flow's ct mark is made of the two
    /// queue numbers themselves (<c>0x80000000 | original &lt;&lt; 15 | reply</c>), so two
    /// different queue pairs can never share a mark.</summary>
    public const int MaxEstQueue = 0x7fff;

    /// <summary>Most addresses kept for one host name (A and AAAA together); the resolver's
    /// default, so that a name is counted as all the addresses it may come to have.</summary>
    public const int MaxAddressesPerHost = 32;

    /// <summary>The elements one rule adds for a container with one IPv4 and one IPv6 address,
    /// before knowing its peers: per family, destinations x source ports (or ICMP types) x
    /// destination ports; a container reference counts one peer address per family and twice
    /// (egress and the peer's ingress), the resolvers one, and a host name every address it may
    /// come to have (<see cref="MaxAddressesPerHost"/>, both families together): its answers
    /// arrive later, each one recompiles, so the label is refused now rather than then.</summary>
    public static long PerAddress(OutputRule rule, out string detail)
    {
        var sports = rule.Proto is L4Proto.Icmp or L4Proto.Icmpv6 ? rule.IcmpTypesOrEmpty.Length : rule.SrcPorts.Length;
        var dports = rule.Proto is L4Proto.Icmp or L4Proto.Icmpv6 ? 0 : rule.DstPorts.Length;
        if (!rule.HostsOrEmpty.IsEmpty)
        {
            detail = $"{rule.HostsOrEmpty.Length} host names x up to {MaxAddressesPerHost} addresses each x {Math.Max(1, sports)} " +
                     $"source ports or ICMP types x {Math.Max(1, dports)} destination ports";
            return Times(Times(Times(rule.HostsOrEmpty.Length, MaxAddressesPerHost), Math.Max(1, sports)), Math.Max(1, dports));
        }
        long total = 0;
        var destinations = 0L;
        foreach (var family in new[] { IpFamily.V4, IpFamily.V6 })
        {
            if (rule.Proto == L4Proto.Icmp && family != IpFamily.V4) continue;
            if (rule.Proto == L4Proto.Icmpv6 && family != IpFamily.V6) continue;
            long dst = rule.ToResolvers || rule.Container is not null ? 1
                : rule.Ips.IsDefaultOrEmpty ? 1
                : rule.Ips.Count(i => i.Family == family);
            destinations += dst;
            total = Plus(total, Times(Times(dst, Math.Max(1, sports)), Math.Max(1, dports)));
        }
        if (rule.Container is not null) total = Times(total, 2);
        detail = $"{destinations} destinations x {Math.Max(1, sports)} source ports or ICMP types x {Math.Max(1, dports)} destination ports" +
                 (rule.Container is not null ? " x 2 (egress and the peer's ingress)" : "");
        return total;
    }

    /// <summary>Mapped ports for one published port and one address per family.</summary>
    public static long PerAddress(MappedPortsPolicy mapped)
    {
        long total = mapped.Localhost.Allow ? 2 : 0;
        if (mapped.External.Allow) total += mapped.External.Ips.IsDefaultOrEmpty ? 2 : mapped.External.Ips.Length;
        return total;
    }

    /// <summary>Null when every est queue of the policy fits <see cref="MaxEstQueue"/>.</summary>
    public static string? EstQueueProblem(ContainerPolicy policy)
    {
        var actions = policy.Output.Select(r => r.Action)
            .Append(policy.MappedPorts.Localhost.Action).Append(policy.MappedPorts.External.Action);
        foreach (var verdict in actions.Select(a => a?.Verdict).OfType<RuleVerdict>())
            if (verdict.InputEstQueue > MaxEstQueue || verdict.OutputEstQueue > MaxEstQueue)
                return $"est queue numbers must be 0-{MaxEstQueue}";
        return null;
    }

    /// <summary>Saturating arithmetic: counts never wrap around.</summary>
    public static long Times(long a, long b) =>
        a == 0 || b == 0 ? 0 : a > long.MaxValue / b ? long.MaxValue : a * b;

    public static long Plus(long a, long b) => a > long.MaxValue - b ? long.MaxValue : a + b;
}
