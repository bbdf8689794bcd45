using System.Collections.Immutable;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using static WhaleWall.Actors.Containers.ContainerLifecycleEvents;

namespace WhaleWall.Actors.Containers;

/// <summary>What a container's actor must know besides its own state: the daemon's decision
/// context (deny-by-default mode, ...), whether a journal and a hostname service are there, and
/// how containers are bound to their bridge ports (off when nobody can find ports).</summary>
public sealed record LifecycleContext(DecisionContext Decision, bool HasStore, bool HasHostnames)
{
    public static readonly LifecycleContext Plain = new(DecisionContext.Default, false, false);

    public BindingSettings Binding { get; init; } = BindingSettings.Off;
}

/// <summary>One container's lifecycle as an immutable value: what WhaleWall knows of it, what it
/// decided, what it asked of the writer and the journal and what they answered. Changed only by
/// <see cref="Apply"/>; <see cref="Decide"/> says which events an input causes. The actor around
/// it only performs the effects of those events.</summary>
public sealed partial record ContainerLifecycle
{
    public required string Id { get; init; }
    public required LifecycleContext Context { get; init; }

    public ContainerFacts? Facts { get; init; }
    /// <summary>Deaths and network disconnects seen: an endpoint answer asked for before the
    /// latest must not bring back what it took away.</summary>
    public long Losses { get; init; }
    public bool Gone { get; init; }
    /// <summary>When WhaleWall received the newest Docker event about the container
    /// (<see cref="System.Diagnostics.Stopwatch"/> timestamp; 0: none yet).</summary>
    public long LastEventAt { get; init; }

    public DecisionInputs? DecidedFor { get; init; }
    public Decision Decision { get; init; } = new(new PolicyDecision.Unmanaged(), []);
    public string? CompileError { get; init; }

    public ImmutableHashSet<string> WatchedHosts { get; init; } = ImmutableHashSet<string>.Empty;
    public ImmutableDictionary<string, HostAddresses> Hosts { get; init; } = ImmutableDictionary<string, HostAddresses>.Empty;
    /// <summary>Addresses the DNS proxy learned from the container's own lookups, by the
    /// <c>hosts:</c> entry of its rules they open (address -> expiry).</summary>
    public ImmutableDictionary<string, ImmutableDictionary<System.Net.IPAddress, DateTimeOffset>> Learned { get; init; } =
        ImmutableDictionary<string, ImmutableDictionary<System.Net.IPAddress, DateTimeOffset>>.Empty;
    /// <summary>Learn requests waiting for the writer: who, and the version that carries them.</summary>
    public ImmutableList<(Akka.Actor.IActorRef ReplyTo, long Version, ImmutableArray<System.Net.IPAddress> Addresses)> LearnsWaiting { get; init; } = [];
    public ImmutableHashSet<string> WatchedPeers { get; init; } = ImmutableHashSet<string>.Empty;
    public ImmutableArray<ContainerFacts> Peers { get; init; } = [];

    public InspectionState Inspection { get; init; } = InspectionState.Idle;
    /// <summary>Networks whose port is being looked for, or waits for the next look.</summary>
    public ImmutableDictionary<string, PortLookup> PortLookups { get; init; } = ImmutableDictionary<string, PortLookup>.Empty;
    /// <summary>Docker has told something of this container since it was seeded from the journal.
    /// Ports are looked for only then: a journalled container that no longer exists would
    /// otherwise bind the port of a new container on its address (Docker derives the MAC from
    /// the address) and lend it its rules.</summary>
    public bool SeenByDocker { get; init; }
    public JournalState Journal { get; init; } = JournalState.Empty;
    public KernelLink Kernel { get; init; } = KernelLink.Nothing;
    public PublishedState Published { get; init; } = PublishedState.Nothing;

    public static ContainerLifecycle New(string id, LifecycleContext context) => new() { Id = id, Context = context };

    /// <summary>Start-up: the addresses the proxy taught this container before the daemon
    /// restarted (<c>learned.json</c>, by container ID; expired ones already left out). Compiled
    /// like any learned address once the container is decided proxied, so they are in its first
    /// wish and the start-up transaction carries them with what is left of their timeouts.</summary>
    public ContainerLifecycle Restore(ImmutableDictionary<string, ImmutableDictionary<System.Net.IPAddress, DateTimeOffset>> learned) =>
        this with { Learned = learned };

    public ContainerLifecycle Apply(IContainerEvent e) => e switch
    {
        EventNoted n => this with
        {
            LastEventAt = Math.Max(LastEventAt, n.ReceivedAt),
            Kernel = Kernel with { EventSince = Kernel.EventSince == 0 ? n.ReceivedAt : Kernel.EventSince },
        },
        InspectionStarted s => this with { Inspection = Inspection with { Running = true, Again = false, Started = s.Number } },
        InspectionQueued => this with { Inspection = Inspection with { Again = true } },
        InspectionFinished f => this with { Inspection = Inspection with { Running = false, NewestDone = f.Number, Failures = 0 } },
        InspectionFailed => this with { Inspection = Inspection with { Running = false, Failures = Inspection.Failures + 1 } },
        EndpointLookupStarted => this,
        PortLookupStarted p => this with
        {
            PortLookups = PortLookups.SetItem(p.NetworkId, new PortLookup(true, PortLookups.TryGetValue(p.NetworkId, out var l) ? l.Failures : 0)),
        },
        PortLookupEnded p => p.Problem is null
            ? this with { PortLookups = PortLookups.Remove(p.NetworkId) }
            : this with
            {
                PortLookups = PortLookups.SetItem(p.NetworkId, new PortLookup(false, (PortLookups.TryGetValue(p.NetworkId, out var l) ? l.Failures : 0) + 1)),
            },
        Seeded s => this with { Facts = s.Facts, Journal = Journal with { Recorded = s.Facts, Requested = s.Facts } },
        FactsLearned f => this with { Facts = f.Facts, Losses = f.Died ? Losses + 1 : Losses, SeenByDocker = true },
        NetworkLeft => this with { Losses = Losses + 1 },
        PolicyDecided d => this with { Decision = d.Decision, DecidedFor = d.Inputs },
        HostsWatched w => this with { WatchedHosts = w.Names, Hosts = Hosts.RemoveRange(Hosts.Keys.Where(n => !w.Names.Contains(n))) },
        PeersWatched w => this with { WatchedPeers = w.References, Peers = [] },
        HostsUpdated h => this with { Hosts = Hosts.SetItem(h.Host.Name, h.Host) },
        PeersUpdated p => this with { Peers = p.Peers },
        CompileChecked c => this with { CompileError = c.Error },
        RecordRequested r => this with { Journal = Journal with { Requested = r.Facts, Awaited = r.Ticket, Tickets = r.Ticket, Attempts = r.Attempt } },
        RecordConfirmed => this with { Journal = Journal with { Recorded = Journal.Requested, Awaited = 0 } },
        FragmentSent s => this with
        {
            Kernel = Kernel with
            {
                Sent = s.Fragment,
                Version = s.Version,
                EventSince = 0,
                InFlightSince = s.EventSince == 0 ? Kernel.InFlightSince
                    : Kernel.InFlightSince == 0 ? s.EventSince : Math.Min(Kernel.InFlightSince, s.EventSince),
            },
        },
        EventsAbsorbed => this with { Kernel = Kernel with { EventSince = 0 } },
        KernelConfirmed k => this with { Kernel = Kernel with { Error = null, InFlightSince = 0, Confirmed = Math.Max(Kernel.Confirmed, k.Version) } },
        AddressesLearned l => this with { Learned = l.Learned },
        LearnAwaited w => this with { LearnsWaiting = LearnsWaiting.Add((w.ReplyTo, w.Version, w.Addresses)) },
        LearnAnswered a => this with { LearnsWaiting = LearnsWaiting.RemoveAll(w => w.ReplyTo.Equals(a.ReplyTo)) },
        KernelRefused r => this with { Kernel = Kernel with { Error = r.Error, InFlightSince = 0 } },
        StatePublished p => this with { Published = new PublishedState(p.Facts, p.State, p.Reasons) },
        ContainerGone => this with { Gone = true },
        _ => this,
    };
}

/// <param name="Running">A lookup is on its way (else it failed and waits for its retry).</param>
public sealed record PortLookup(bool Running, int Failures);

/// <param name="Running">An inspection is on its way.</param>
/// <param name="Again">Something happened meanwhile: its answer is stale, ask again.</param>
/// <param name="Started">Number of the newest inspection started.</param>
/// <param name="NewestDone">Number of the newest inspection answered.</param>
public sealed record InspectionState(bool Running, bool Again, long Started, long NewestDone, int Failures)
{
    public static readonly InspectionState Idle = new(false, false, 0, 0, 0);
}

/// <param name="Recorded">The facts the journal holds.</param>
/// <param name="Requested">The facts last sent to the journal.</param>
/// <param name="Awaited">Ticket of the record awaited (0: none).</param>
public sealed record JournalState(ContainerFacts? Recorded, ContainerFacts? Requested, long Awaited, long Tickets)
{
    /// <summary>How often the awaited record was sent again unanswered (its backoff).</summary>
    public int Attempts { get; init; }

    public static readonly JournalState Empty = new(null, null, 0, 0);
}

/// <param name="Sent">The last wish sent to the writer.</param>
/// <param name="Error">The kernel's refusal of the current wish (the writer keeps it drop-all and retries).</param>
/// <param name="EventSince">Receipt of the oldest Docker event not yet reflected in a wish.</param>
/// <param name="InFlightSince">... of the events behind the wish in flight.</param>
public sealed record KernelLink(Fragment? Sent, long Version, string? Error, long EventSince, long InFlightSince)
{
    /// <summary>The newest version the writer applied.</summary>
    public long Confirmed { get; init; }

    public static readonly KernelLink Nothing = new(null, 0, null, 0, 0);
}

public sealed record PublishedState(ContainerFacts? Facts, ContainerState? State, ImmutableArray<string> Reasons)
{
    public static readonly PublishedState Nothing = new(null, null, []);
}
