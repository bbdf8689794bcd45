namespace WhaleWall.Actors.Containers;

public static class ContainerCommands
{
    /// <summary>Something happened to the container: look at it again. <paramref name="Event"/>
    /// is the Docker event behind it, if any.</summary>
    /// <paramref name="ReceivedAt"/>: when the event reached WhaleWall (<see cref="System.Diagnostics.Stopwatch"/>
    /// ticks; 0 when not from an event), for the event -> enforced latency.
    public sealed record Refresh(string Reason, Docker.DockerEvent? Event = null, long ReceivedAt = 0);

    /// <summary>Start-up: the facts the journal holds for the container; enforced at once,
    /// before Docker is asked.</summary>
    public sealed record Seed(WhaleWall.Firewall.Policy.ContainerFacts Facts);

    /// <summary>The DNS proxy learned addresses from one of the container's own lookups
    /// (docs/dns-proxy.md): they become the container's own <c>outh*</c> elements for every
    /// output rule whose <c>hosts:</c> match one of <c>Batch.AllowedNames</c>, each expiring at
    /// <paramref name="Now"/> + its timeout. Answered with <see cref="ContainerEvents.Learned"/>
    /// once the writer has applied them (never before), or with an error.</summary>
    /// <summary>To the Docker events actor: hand <paramref name="Message"/> to container
    /// <paramref name="Id"/>'s actor (the sender kept); a learn request for a container it does
    /// not know is answered with an error at once.</summary>
    public sealed record ToContainer(string Id, object Message);

    public sealed record LearnAddresses(WhaleWall.Firewall.Dns.LearnedBatch Batch, DateTimeOffset Now);
}

public static class ContainerEvents
{
    /// <summary>The container no longer exists and its rules were removed.</summary>
    public sealed record Gone(string Id);

    /// <summary>The answer to <see cref="ContainerCommands.LearnAddresses"/>: null error: the
    /// kernel holds the addresses.</summary>
    public sealed record Learned(string? Error);
}

/// <summary>Published on the event stream: what the daemon knows of a container, for
/// metrics and health (never per packet).</summary>
public static class ContainerNotices
{
    /// <summary>The container's facts and state changed; <paramref name="Facts"/> null: it is gone.
    /// <paramref name="Reasons"/>: why it is in that state (label errors, compile error, the
    /// kernel's rejection, why it is unfilterable), already escaped for logs.</summary>
    public sealed record StateChanged(string Id, Firewall.Policy.ContainerFacts? Facts, ContainerState State,
        System.Collections.Immutable.ImmutableArray<string> Reasons = default)
    {
        public System.Collections.Immutable.ImmutableArray<string> ReasonsOrEmpty => Reasons.IsDefault ? [] : Reasons;

        /// <summary>Audit or enforce (enforce for an unmanaged container).</summary>
        public Firewall.Decide.PolicyMode Mode { get; init; }

        /// <summary>Its new flows are recorded (audit mode or <c>whalewall.learn=true</c>).</summary>
        public bool Learn { get; init; }
    }
}

public enum ContainerState
{
    /// <summary>Not opted in: WhaleWall leaves it alone.</summary>
    Unmanaged,
    /// <summary>Its policy is in the kernel (or on its way).</summary>
    Enforced,
    /// <summary>Invalid labels or a policy that cannot be expressed: drop-all.</summary>
    FailClosed,
    /// <summary>The kernel rejected its rules: drop-all until the retry succeeds.</summary>
    Rejected,
    /// <summary>Removed.</summary>
    Gone,
    /// <summary>Opted in, but its traffic never crosses WhaleWall's hooks (host network,
    /// <c>container:</c> network mode, macvlan/ipvlan, overlay east-west): NOT enforced.</summary>
    Unfilterable,
}
