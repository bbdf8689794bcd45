using System.Collections.Immutable;

namespace WhaleWall.Firewall.Policy;

/// <summary>An allowed outbound flow. Empty lists mean "any"; a rule with neither
/// <see cref="Ips"/> nor <see cref="Container"/> allows any destination.</summary>
public sealed record OutputRule(
    string? Network,
    ImmutableArray<AddressRange> Ips,
    string? Container,
    L4Proto? Proto,
    ImmutableArray<PortRange> DstPorts);

public sealed record MappedPortsPolicy(bool LocalhostAllow, bool ExternalAllow, ImmutableArray<AddressRange> ExternalIps)
{
    public static readonly MappedPortsPolicy Closed = new(false, false, []);
}

/// <summary>A container's valid policy. Anything not allowed is dropped.</summary>
public sealed record ContainerPolicy(ImmutableArray<OutputRule> Output, MappedPortsPolicy MappedPorts)
{
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

/// <summary>One problem in a label: which label, where in its YAML, what is wrong.</summary>
public sealed record LabelError(string Label, string Path, int? Line, string Message)
{
    public override string ToString() =>
        $"{Label}: {(Path.Length > 0 ? Path : "(root)")}{(Line is { } l ? $" (line {l})" : "")}: {Message}";
}
