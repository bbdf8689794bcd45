using System.Collections.Immutable;
using WhaleWall.Actors.Hostnames;
using WhaleWall.Actors.Nft;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using static WhaleWall.Actors.Containers.ContainerInputs;
using static WhaleWall.Actors.Containers.ContainerLifecycleEvents;
using static WhaleWall.Actors.Containers.PeerDirectoryEvents;

namespace WhaleWall.Actors.Containers;

public sealed partial record ContainerLifecycle
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    /// <summary>The events <paramref name="input"/> causes. Pure: everything it needs is in the
    /// state and the input (the label parser and compiler are pure too). After the input's own
    /// events it settles: decide when the decision's inputs changed, compile, journal or program,
    /// publish the state when it changed.</summary>
    public ImmutableArray<IContainerEvent> Decide(object input)
    {
        var events = new List<IContainerEvent>();
        var s = this;
        void Emit(IContainerEvent e)
        {
            events.Add(e);
            s = s.Apply(e);
        }

        if (Gone) return [];
        switch (input)
        {
            case ContainerCommands.Seed seed:
                if (s.Facts is not null) return [];
                Emit(new Seeded(seed.Facts));
                break;

            case ContainerCommands.Refresh r:
                if (r.ReceivedAt != 0) Emit(new EventNoted(r.ReceivedAt));
                if (r.Event is { } e) FastPath(s, e, Emit);
                Emit(s.Inspection.Running ? new InspectionQueued() : new InspectionStarted(s.Inspection.Started + 1));
                break;

            case Inspected i:
                if (i.Number != s.Inspection.Started) return [];
                var again = s.Inspection.Again;
                Emit(new InspectionFinished(i.Number));
                if (again)
                {
                    Emit(new InspectionStarted(s.Inspection.Started + 1));
                    return [.. events];
                }
                if (i.Facts is null)
                {
                    // always told, even if nothing was sent before: the writer's start-up waits for every listed container
                    Emit(new FragmentSent(Fragment.Empty(s.Id), s.Kernel.Version + 1, s.Kernel.EventSince));
                    Emit(new ContainerGone());
                    return [.. events];
                }
                Emit(new FactsLearned(i.Facts));
                break;

            case InspectFailed f:
                Emit(new InspectionFailed(f.Error, Backoff(s.Inspection.Failures + 1)));
                return [.. events];

            case EndpointFound found:
                // an inspection answered after the lookup started knows better (the container may
                // be gone already), and a death seen meanwhile must not be undone
                if (found.Attachment is not { } a || s.Facts is null || found.Deaths != s.Deaths ||
                    s.Inspection.NewestDone > found.InspectionsStarted) return [];
                Emit(new FactsLearned(s.Facts with { Running = true, Networks = [.. s.Facts.Networks.Where(n => n.Id != a.Id), a] }));
                break;

            case HostnamesEvents.AddressesChanged h:
                if (!s.WatchedHosts.Contains(h.Host.Name)) return [];
                Emit(new HostsUpdated(h.Host));
                break;

            case PeersChanged p:
                Emit(new PeersUpdated(p.Peers));
                break;

            case NftWriterEvents.Applied applied:
                if (applied.Version != s.Kernel.Version) return [];
                Emit(new KernelConfirmed(applied.Version, s.Kernel.InFlightSince));
                break;

            case NftWriterEvents.Rejected r:
                if (r.Version != s.Kernel.Version) return [];
                Emit(new KernelRefused(r.Version, r.Error));
                break;

            case ContainerStoreEvents.Recorded r:
                if (r.Ticket != s.Journal.Awaited) return [];
                Emit(new RecordConfirmed(r.Ticket, Overdue: false));
                break;

            case RecordOverdue o:
                if (o.Ticket != s.Journal.Awaited) return [];
                Emit(new RecordConfirmed(o.Ticket, Overdue: true));
                break;

            default:
                return [];
        }
        Settle(s, Emit);
        return [.. events];
    }

    /// <summary>What the Docker event itself says, before an inspection answers. First-packet
    /// guarantee: Docker emits `network connect` before `start`, but holds the container's lock
    /// until the process runs, so a container inspect would only answer afterwards; the labels
    /// come with `create`, the address from the network. A death or a disconnect takes the rules
    /// away at once, without waiting for Docker's API.</summary>
    private static void FastPath(ContainerLifecycle s, Docker.DockerEvent e, Action<IContainerEvent> emit)
    {
        switch (e)
        {
            case { Type: "container", Action: "create", Attributes: { } attributes } when s.Facts is null:
                var labels = attributes.Where(a => a.Key is not ("name" or "image")).ToImmutableDictionary();
                emit(new FactsLearned(new ContainerFacts(s.Id, attributes.GetValueOrDefault("name") ?? "", false, labels, [], [])));
                break;
            case { Type: "container", Action: "die" or "destroy" } when s.Facts is { } facts:
                emit(new FactsLearned(facts with { Running = false }, Died: true));
                break;
            case { Type: "network", Action: "disconnect", NetworkId: { } network } when s.Facts is { } facts && facts.Networks.Any(n => n.Id == network):
                emit(new FactsLearned(facts with { Networks = [.. facts.Networks.Where(n => n.Id != network)] }));
                break;
            case { Type: "network", Action: "connect", NetworkId: { } network }
                when s.Facts is not null && (s.Decision.IsManaged || s.Context.Gateway is not null):
                emit(new EndpointLookupStarted(network, s.Inspection.Started, s.Deaths));
                break;
        }
    }

    /// <summary>Brings everything in step with the facts: the decision (only when its inputs
    /// changed), the names and peers it watches, the compiled wish, the journal (new facts are
    /// journalled before the kernel hears of anything it did not hold before; taking rules away
    /// never waits), the writer, and what metrics and status are told.</summary>
    private static void Settle(ContainerLifecycle s0, Action<IContainerEvent> emit)
    {
        var s = s0;
        void Emit(IContainerEvent e)
        {
            emit(e);
            s = s.Apply(e);
        }
        if (s.Facts is not { } facts || s.Gone) return;

        var inputs = DecisionInputs.Of(facts);
        if (!inputs.Same(s.DecidedFor))
        {
            var decision = PolicyDecider.Decide(facts, s.Context.Gateway);
            var errors = decision is PolicyDecision.FailClosed f ? f.Errors.Select(x => x.ToString()).ToImmutableArray() : [];
            Emit(new PolicyDecided(decision, inputs, errors));
            var hosts = decision.EffectivePolicy.Output.SelectMany(r => r.HostsOrEmpty).ToImmutableHashSet();
            if (s.Context.HasHostnames && !hosts.SetEquals(s.WatchedHosts)) Emit(new HostsWatched(hosts));
            var references = decision.EffectivePolicy.ContainerReferences.ToImmutableHashSet();
            if (!references.SetEquals(s.WatchedPeers)) Emit(new PeersWatched(references, facts.ComposeProject));
        }

        var compiled = Compiler.Compile(facts, s.Decision, s.Peers, s.Hosts);
        if (compiled.Error != s.CompileError) Emit(new CompileChecked(compiled.Error));
        var wish = compiled.Fragment;
        var removal = wish.Elements.IsEmpty && wish.ChainsOrEmpty.IsEmpty;

        var journalled = !s.Context.HasStore || FactsComparer.Same(s.Journal.Recorded, facts);
        if (!journalled && (s.Journal.Awaited == 0 || !FactsComparer.Same(s.Journal.Requested, facts)))
            Emit(new RecordRequested(facts, s.Reasons(), s.Journal.Tickets + 1));
        var mayProgram = journalled || removal || s.Journal.Awaited == 0;
        if (mayProgram && !SameWish(s.Kernel.Sent, wish))
            Emit(new FragmentSent(wish, s.Kernel.Version + 1, s.Kernel.EventSince));
        else if (mayProgram && s.Kernel.EventSince != 0)
            Emit(new EventsAbsorbed());

        var (state, reasons) = s.Status();
        if (!ReferenceEquals(s.Published.Facts, facts) || s.Published.State != state || !s.Published.Reasons.SequenceEqual(reasons))
            Emit(new StatePublished(facts, state, reasons));
    }

    /// <summary>Why the container is in its state: label errors, the compiler's and the kernel's refusal.</summary>
    public ImmutableArray<string> Reasons()
    {
        var reasons = LabelErrors.ToBuilder();
        if (CompileError is { } c) reasons.Add(c);
        if (Kernel.Error is { } k) reasons.Add("the kernel refused its rules: " + k);
        return reasons.ToImmutable();
    }

    /// <summary>What metrics and status are told.</summary>
    public (ContainerState State, ImmutableArray<string> Reasons) Status() => (Decision switch
    {
        PolicyDecision.Unmanaged => ContainerState.Unmanaged,
        PolicyDecision.FailClosed => ContainerState.FailClosed,
        _ when CompileError is not null => ContainerState.FailClosed,
        _ when Kernel.Error is not null => ContainerState.Rejected,
        _ => ContainerState.Enforced,
    }, Reasons());

    /// <summary>Same elements with the same expiries, same chains: a DNS answer that only pushes
    /// expiries further is a new wish (the writer renews the kernel's timeouts).</summary>
    public static bool SameWish(Fragment? a, Fragment b)
    {
        if (a is null) return false;
        if (a.Elements.Length != b.Elements.Length || !a.ChainsOrEmpty.SequenceEqual(b.ChainsOrEmpty)) return false;
        for (var i = 0; i < a.Elements.Length; i++)
            if (!a.Elements[i].Equals(b.Elements[i]) || a.Elements[i].Expires != b.Elements[i].Expires) return false;
        return true;
    }

    private static TimeSpan Backoff(int failures) =>
        TimeSpan.FromSeconds(Math.Min(MaxBackoff.TotalSeconds, Math.Pow(2, Math.Min(failures, 10)) / 2));
}
