using System.Collections.Immutable;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Decide;

/// <summary>What becomes of a container, in one word (status, metrics, <c>check</c>).</summary>
public enum Outcome
{
    /// <summary>Not opted in (and not on a gateway network): left alone.</summary>
    Unmanaged,
    /// <summary>Its policy is what the kernel gets.</summary>
    Enforced,
    /// <summary>Invalid labels, or a policy the compiler refuses: drop-all.</summary>
    FailClosed,
    /// <summary>Managed, but some or all of its traffic never crosses WhaleWall's hooks: NOT
    /// (fully) enforced, whatever its labels say.</summary>
    Unfilterable,
}

/// <summary>The decision for one container: the policy its labels and the context give
/// (<see cref="Policy"/>, what the compiler takes), and which of its attachments WhaleWall
/// cannot see (<see cref="Invisible"/>).</summary>
public sealed record Decision(PolicyDecision Policy, ImmutableArray<InvisibleAttachment> Invisible)
{
    /// <summary>What the DNS proxy applies to the container: set when the proxy is on and the
    /// policy is enforced (a fail-closed container is not proxied: its port 53 is dropped).</summary>
    public Dns.DnsPolicy? Dns { get; init; }

    /// <summary>Enforce, or audit: the same policy, but what it would drop passes and is
    /// counted and recorded (<see cref="ContainerMode"/>). Enforce for an unmanaged container.</summary>
    public PolicyMode Mode { get; init; }

    /// <summary>The container's new flows are recorded (audit mode, or <c>whalewall.learn=true</c>).</summary>
    public bool Learn { get; init; }

    /// <summary>Before compiling: unmanaged, enforced, fail-closed (label errors), or
    /// unfilterable (managed, with an invisible part; fail-closed or not, since a drop-all
    /// that sees nothing enforces nothing either).</summary>
    public Outcome Outcome => After(null);

    /// <summary>After compiling: a compile error (e.g. a policy that expands beyond the element
    /// limit) makes an otherwise enforced container fail closed.</summary>
    public Outcome After(CompileResult? compiled) => Policy switch
    {
        PolicyDecision.Unmanaged => Outcome.Unmanaged,
        _ when !Invisible.IsEmpty => Outcome.Unfilterable,
        PolicyDecision.FailClosed => Outcome.FailClosed,
        _ when compiled?.Error is not null => Outcome.FailClosed,
        _ => Outcome.Enforced,
    };

    /// <summary>Why the container is in its <see cref="After"/> state, one line each, control
    /// characters escaped (safe for logs, status and metrics notes): the label errors, the
    /// compile error, each invisible attachment.</summary>
    public ImmutableArray<string> Reasons(CompileResult? compiled = null)
    {
        if (!Policy.IsManaged) return [];
        var reasons = ImmutableArray.CreateBuilder<string>();
        if (Policy is PolicyDecision.FailClosed f) reasons.AddRange(f.Errors.Select(e => Escape(e.ToString())));
        if (compiled?.Error is { } error) reasons.Add(Escape(error));
        reasons.AddRange(Invisible.Select(i => Escape("unfilterable: " + i.Reason)));
        return reasons.ToImmutable();
    }

    /// <summary>The one warning line the daemon logs when a managed container is (or becomes)
    /// unfilterable; null otherwise. <paramref name="container"/>: how the log names it.</summary>
    public string? UnfilterableWarning(string container) =>
        Outcome != Outcome.Unfilterable ? null
            : Escape($"{container}: UNFILTERABLE, its labels are not (fully) enforced: {string.Join("; ", Invisible.Select(i => i.Reason))}");

    /// <summary>Text from labels or Docker made safe for one line (<see cref="SafeText.Escape(string?)"/>:
    /// idempotent, so layers that each escape do not double it).</summary>
    public static string Escape(string text) => SafeText.Escape(text);
}

public static class Outcomes
{
    /// <summary>The spelling used by <c>check --json</c>, <c>status</c> and the metrics' state label.</summary>
    public static string Label(this Outcome outcome) => outcome switch
    {
        Outcome.Enforced => "enforced",
        Outcome.FailClosed => "fail_closed",
        Outcome.Unfilterable => "unfilterable",
        _ => "unmanaged",
    };
}
