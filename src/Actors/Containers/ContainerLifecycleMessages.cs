using System.Collections.Immutable;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Containers;

/// <summary>What the <see cref="ContainerActor"/> learns from the outside world besides the
/// public commands (<see cref="ContainerCommands"/>), the writer's replies, the store's, the
/// hostnames' and the peer directory's: the results of its own asynchronous work.</summary>
public static class ContainerInputs
{
    /// <summary>A container inspection finished; null facts: the container no longer exists.</summary>
    public sealed record Inspected(ContainerFacts? Facts, long Number);

    public sealed record InspectFailed(string Error);

    /// <summary>The container's endpoint on a network, asked of the network at `network connect`
    /// (Docker holds the container itself locked while starting it). Null: not found, or the
    /// lookup failed (<paramref name="Error"/>).
    /// <paramref name="InspectionsStarted"/> and <paramref name="Losses"/>: as when the lookup started.</summary>
    public sealed record EndpointFound(NetworkAttachment? Attachment, long InspectionsStarted, long Losses, string? Error = null);

    /// <summary>The DNS proxy's <see cref="ContainerCommands.LearnAddresses"/>, with whom to answer.</summary>
    public sealed record LearnRequested(ContainerCommands.LearnAddresses Command, Akka.Actor.IActorRef ReplyTo);

    /// <summary>Time to look for a port again after a lookup found none.</summary>
    public sealed record RetryPort(string NetworkId);

    /// <summary>The journal has not answered the record of this ticket in time: ask again.</summary>
    public sealed record RetryRecord(long Ticket);
}

/// <summary>What happened to a container's lifecycle: returned by
/// <see cref="ContainerLifecycle.Decide"/>, folded by <see cref="ContainerLifecycle.Apply"/>, and
/// turned into effects (messages, logs, timers) by the actor. Past tense.</summary>
public interface IContainerEvent;

public static class ContainerLifecycleEvents
{
    /// <summary>A Docker event reached WhaleWall at <paramref name="ReceivedAt"/> (Stopwatch ticks).</summary>
    public sealed record EventNoted(long ReceivedAt) : IContainerEvent;

    public sealed record InspectionStarted(long Number) : IContainerEvent;

    /// <summary>Asked again while an inspection runs: one more follows it, the running one's answer is stale.</summary>
    public sealed record InspectionQueued : IContainerEvent;

    public sealed record InspectionFinished(long Number) : IContainerEvent;

    public sealed record InspectionFailed(string Error, TimeSpan RetryIn) : IContainerEvent;

    /// <param name="SentAfter">A network inspect another container asked for may answer when it was
    /// sent after this (<see cref="Docker.NetworkEndpoints"/>): WhaleWall's receipt of the container's
    /// previous Docker event, or of this `connect` when there was none.</param>
    public sealed record EndpointLookupStarted(string NetworkId, long InspectionsStarted, long Losses, long SentAfter = long.MaxValue) : IContainerEvent;

    /// <summary>Docker disconnected the container from a network (counted in <see cref="ContainerLifecycle.Losses"/>).</summary>
    public sealed record NetworkLeft(string NetworkId) : IContainerEvent;

    /// <summary>Looking for the container's port on a bridge (docs/binding.md).</summary>
    public sealed record PortLookupStarted(string NetworkId, string Bridge, string Mac) : IContainerEvent;

    /// <summary>The lookup ended; when it found nothing, the next one starts after <paramref name="RetryIn"/>.</summary>
    public sealed record PortLookupEnded(string NetworkId, string? Problem, TimeSpan RetryIn) : IContainerEvent;

    /// <summary>The journal's facts, replayed at start-up: enforced at once, Docker asked afterwards.</summary>
    public sealed record Seeded(ContainerFacts Facts) : IContainerEvent;

    /// <summary>New facts. <paramref name="Died"/>: its process died or it is being destroyed
    /// (from the event itself, before Docker answers an inspection).</summary>
    public sealed record FactsLearned(ContainerFacts Facts, bool Died = false) : IContainerEvent;

    /// <summary>The labels, networks and network mode decided anew (through the one decision
    /// entry point the daemon shares with `check` and `status`).</summary>
    public sealed record PolicyDecided(Decision Decision, DecisionInputs Inputs) : IContainerEvent;

    public sealed record HostsWatched(ImmutableHashSet<string> Names) : IContainerEvent;

    public sealed record PeersWatched(ImmutableHashSet<string> References, string? Project) : IContainerEvent;

    public sealed record HostsUpdated(HostAddresses Host) : IContainerEvent;

    public sealed record PeersUpdated(ImmutableArray<ContainerFacts> Peers) : IContainerEvent;

    /// <summary>The compiler's verdict changed (null: it compiles).</summary>
    public sealed record CompileChecked(string? Error) : IContainerEvent;

    /// <summary>The facts go to the journal under a new ticket; unanswered after
    /// <paramref name="AskAgainIn"/> (the store failed and restarted meanwhile: the record went to
    /// dead letters), they are sent again. <paramref name="Attempt"/>: 0 first, then each resend.</summary>
    public sealed record RecordRequested(ContainerFacts Facts, ImmutableArray<string> Errors, long Ticket, TimeSpan AskAgainIn, int Attempt = 0) : IContainerEvent;

    public sealed record RecordConfirmed(long Ticket) : IContainerEvent;

    /// <summary>The container's wish went to the writer. <paramref name="EventSince"/>: receipt of
    /// the oldest Docker event it reflects (0: none), for the event -> enforced latency.</summary>
    public sealed record FragmentSent(Fragment Fragment, long Version, long EventSince) : IContainerEvent;

    /// <summary>Nothing to send: the events seen so far changed nothing in the kernel.</summary>
    public sealed record EventsAbsorbed : IContainerEvent;

    public sealed record KernelConfirmed(long Version, long InFlightSince) : IContainerEvent;

    public sealed record KernelRefused(long Version, string Error) : IContainerEvent;

    public sealed record StatePublished(ContainerFacts Facts, ContainerState State, ImmutableArray<string> Reasons,
        Firewall.Decide.PolicyMode Mode = Firewall.Decide.PolicyMode.Enforce, bool Learn = false) : IContainerEvent;

    /// <summary>Addresses the DNS proxy learned, by the rule's <c>hosts:</c> entry they open
    /// (address -> expiry; expired ones pruned).</summary>
    public sealed record AddressesLearned(ImmutableDictionary<string, ImmutableDictionary<System.Net.IPAddress, DateTimeOffset>> Learned) : IContainerEvent;

    /// <summary>A learn request waits for the writer's answer to <paramref name="Version"/>, which
    /// carries <paramref name="Addresses"/> (checked again when it is applied).</summary>
    public sealed record LearnAwaited(Akka.Actor.IActorRef ReplyTo, long Version, ImmutableArray<System.Net.IPAddress> Addresses) : IContainerEvent;

    /// <summary>A learn request is answered (null error: committed).</summary>
    public sealed record LearnAnswered(Akka.Actor.IActorRef ReplyTo, string? Error) : IContainerEvent;

    /// <summary>Docker says the container no longer exists.</summary>
    public sealed record ContainerGone : IContainerEvent;
}

/// <summary>What a container's decision depends on: its labels, the networks it is on (names and
/// drivers) and its network mode. Compared by value, so an event that changes none of them
/// decides nothing (and logs nothing).</summary>
public sealed record DecisionInputs(ImmutableSortedDictionary<string, string> Labels, string Networks)
{
    public static DecisionInputs Of(ContainerFacts facts) => new(
        facts.Labels.ToImmutableSortedDictionary(StringComparer.Ordinal, StringComparer.Ordinal),
        string.Join("|", facts.Networks.Select(n => $"{n.Name}/{n.Driver}").Order(StringComparer.Ordinal)) + "|" + facts.NetworkMode);

    public bool Same(DecisionInputs? other) => other is not null && Networks == other.Networks && SameLabels(other);

    public bool SameLabels(DecisionInputs? other) =>
        other is not null && Labels.Count == other.Labels.Count &&
        Labels.All(kv => other.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value);
}
