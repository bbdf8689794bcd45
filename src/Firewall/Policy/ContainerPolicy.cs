using System.Collections.Immutable;

namespace WhaleWall.Firewall.Policy;

/// <summary>What happens to new traffic a rule matches, beyond "accept": whalewall's
/// <c>verdict</c>. <see cref="Chain"/> jumps to an operator's chain in WhaleWall's table,
/// <see cref="Queue"/> sends new packets to an NFQUEUE, the est queues send the flow's
/// established packets (inbound / outbound) to NFQUEUEs.</summary>
public sealed record RuleVerdict(string? Chain, ushort? Queue, ushort? InputEstQueue, ushort? OutputEstQueue);

/// <summary>Per-rule statements that need a chain of their own in the kernel.</summary>
public sealed record RuleAction(string? LogPrefix, RuleVerdict? Verdict)
{
    public static RuleAction? Of(string? logPrefix, RuleVerdict? verdict) =>
        logPrefix is null && verdict is null ? null : new RuleAction(logPrefix, verdict);
}

/// <summary>Where a rule was written: the label (<c>whalewall.rules</c>, <c>dockerwall.outbound</c>,
/// <c>DEFAULT_OUTBOUND</c>), the path in it (<c>output[2]</c>, <c>mapped_ports.external</c>, <c>[3]</c>
/// for an entry of an outbound list) and the 1-based line of its YAML (null for an outbound
/// list). Part of the rule's equality: a moved rule is a changed policy, which only recompiles.</summary>
public sealed record RuleSource(string Label, string Path, int? Line)
{
    public override string ToString() => SafeText.Escape($"{Label} {Path}{(Line is { } l ? $" (line {l})" : "")}");
}

/// <summary>An allowed outbound flow. Empty lists mean "any"; a rule with neither
/// <see cref="Ips"/> nor <see cref="Container"/> allows any destination.</summary>
public sealed record OutputRule(
    string? Network,
    ImmutableArray<AddressRange> Ips,
    string? Container,
    L4Proto? Proto,
    ImmutableArray<PortRange> SrcPorts,
    ImmutableArray<PortRange> DstPorts,
    ImmutableArray<byte> IcmpTypes = default,
    RuleAction? Action = null,
    bool ToResolvers = false,
    ImmutableArray<string> Hosts = default,
    RuleSource? Source = null)
{
    public ImmutableArray<string> HostsOrEmpty => Hosts.IsDefault ? [] : Hosts;

    public ImmutableArray<byte> IcmpTypesOrEmpty => IcmpTypes.IsDefault ? [] : IcmpTypes;
}

/// <summary>Traffic to the container's published ports, from the host itself (localhost) or
/// from elsewhere (external; only from <see cref="Ips"/> when given).</summary>
public sealed record MappedRule(bool Allow, ImmutableArray<AddressRange> Ips, RuleAction? Action, RuleSource? Source = null)
{
    public static readonly MappedRule Closed = new(false, [], null);
}

public sealed record MappedPortsPolicy(MappedRule Localhost, MappedRule External)
{
    public static readonly MappedPortsPolicy Closed = new(MappedRule.Closed, MappedRule.Closed);
}

/// <summary>A container's valid policy. Anything not allowed is dropped.
/// <see cref="NeighbourNetworks"/> (deny-by-default mode): networks on which the container
/// may talk with every other container, both ways.</summary>
public sealed record ContainerPolicy(ImmutableArray<OutputRule> Output, MappedPortsPolicy MappedPorts,
    ImmutableArray<string> NeighbourNetworks = default)
{
    public ImmutableArray<string> NeighbourNetworksOrEmpty => NeighbourNetworks.IsDefault ? [] : NeighbourNetworks;

    public static readonly ContainerPolicy DropAll = new([], MappedPortsPolicy.Closed);

    public IEnumerable<string> ContainerReferences =>
        Output.Select(r => r.Container).OfType<string>().Distinct();
}

/// <summary>What the labels decide for one container.</summary>
public abstract record PolicyDecision
{
    private PolicyDecision() { }

    /// <summary>Not opted in: WhaleWall leaves the container alone.</summary>
    public sealed record Unmanaged : PolicyDecision;

    public sealed record Enforced(ContainerPolicy Policy) : PolicyDecision;

    /// <summary>Opted in with invalid labels: drop-all in both directions.</summary>
    public sealed record FailClosed(ImmutableArray<LabelError> Errors) : PolicyDecision;

    public ContainerPolicy EffectivePolicy => this is Enforced e ? e.Policy : ContainerPolicy.DropAll;
    public bool IsManaged => this is not Unmanaged;
}

/// <summary>One problem in a label: which label, where in its YAML, what is wrong. Path and
/// message may quote label text: <see cref="ToString"/> escapes it (one line, no bidi tricks).</summary>
public sealed record LabelError(string Label, string Path, int? Line, string Message)
{
    public override string ToString() =>
        SafeText.Escape($"{Label}: {(Path.Length > 0 ? Path : "(root)")}{(Line is { } l ? $" (line {l})" : "")}: {Message}");
}
