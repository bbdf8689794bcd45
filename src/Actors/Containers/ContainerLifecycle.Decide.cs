using System.Collections.Immutable;
using WhaleWall.Actors.Binding;
using WhaleWall.Actors.Hostnames;
using WhaleWall.Actors.Nft;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using static WhaleWall.Actors.Containers.ContainerInputs;
using static WhaleWall.Actors.Containers.ContainerLifecycleEvents;
using static WhaleWall.Actors.Containers.PeerDirectoryEvents;

namespace WhaleWall.Actors.Containers;

public sealed partial record ContainerLifecycle
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    /// <summary>The events <paramref name="input"/> causes at <paramref name="now"/>. Pure:
    /// everything it needs is in the state, the input and the time passed in (the label parser
    /// and compiler are pure too). After the input's own events it settles: decide when the
    /// decision's inputs changed, compile, journal or program, publish the state when it changed.</summary>
    public ImmutableArray<IContainerEvent> Decide(object input, DateTimeOffset now)
    {
        var events = new List<IContainerEvent>();
        var s = this;
        void Emit(IContainerEvent e)
        {
            events.Add(e);
            s = s.Apply(e);
        }

        // Docker holds it no more: nothing to enforce, nothing left to ask
        void Removed()
        {
            foreach (var (replyTo, _, _) in s.LearnsWaiting) Emit(new LearnAnswered(replyTo, "the container is gone"));
            // always told, even if nothing was sent before: the writer's start-up waits for every listed container
            Emit(new FragmentSent(Fragment.Empty(s.Id), s.Kernel.Version + 1, s.Kernel.EventSince));
            Emit(new ContainerGone());
        }

        if (Gone) return input is LearnRequested gone ? [new LearnAnswered(gone.ReplyTo, "the container is gone")] : [];
        // what the kernel has timed out is never compiled again, whatever the input
        var pruned = PruneLearned(s, now, Emit);
        switch (input)
        {
            case LearnRequested l:
                foreach (var learnt in Learn(s, l, settle: pruned)) Emit(learnt);
                return [.. events];

            case ContainerCommands.Seed seed:
                if (s.Facts is not null) return [];
                Emit(new Seeded(seed.Facts));
                break;

            case ContainerCommands.Refresh r:
                // a shared network answer must be newer than the container's previous event (none: this one)
                var sentAfter = s.LastEventAt != 0 ? s.LastEventAt : r.ReceivedAt != 0 ? r.ReceivedAt : long.MaxValue;
                if (r.ReceivedAt != 0) Emit(new EventNoted(r.ReceivedAt));
                // `destroy` is final (an id is never used again): an inspect could only answer 404
                if (r.Event is { Type: "container", Action: "destroy" })
                {
                    Removed();
                    return [.. events];
                }
                if (r.Event is { } e) FastPath(s, e, sentAfter, Emit);
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
                    Removed();
                    return [.. events];
                }
                Emit(new FactsLearned(KeepPorts(s.Facts, i.Facts)));
                break;

            case InspectFailed f:
                Emit(new InspectionFailed(f.Error, Backoff(s.Inspection.Failures + 1)));
                return [.. events];

            case EndpointFound found:
                // an inspection answered after the lookup started knows better (the container may
                // be gone already), and a death or disconnect seen meanwhile must not be undone
                if (found.Attachment is not { } a || s.Facts is null || found.Losses != s.Losses ||
                    s.Inspection.NewestDone > found.InspectionsStarted) return [];
                Emit(new FactsLearned(KeepPorts(s.Facts, s.Facts with { Running = true, Networks = [.. s.Facts.Networks.Where(n => n.Id != a.Id), a] })));
                break;

            case BridgePortsEvents.PortFound found when s.Facts is { } facts:
                if (!s.PortLookups.ContainsKey(found.NetworkId)) return [];
                Emit(new PortLookupEnded(found.NetworkId, null, TimeSpan.Zero));
                if (facts.Networks.FirstOrDefault(n => n.Id == found.NetworkId) is not { } attachment ||
                    attachment.MacAddress != found.Mac || attachment.Port is not null) break;
                Emit(new FactsLearned(facts with { Networks = facts.Networks.Replace(attachment, attachment with { Port = found.Port }) }));
                break;

            case BridgePortsEvents.PortNotFound missing:
                if (!s.PortLookups.TryGetValue(missing.NetworkId, out var lookup)) return [];
                Emit(new PortLookupEnded(missing.NetworkId, missing.Reason, Backoff(lookup.Failures + 1)));
                return [.. events];

            case RetryPort retry:
                if (!s.PortLookups.TryGetValue(retry.NetworkId, out var waiting) || waiting.Running ||
                    s.Facts?.Networks.FirstOrDefault(n => n.Id == retry.NetworkId) is not { Port: null } unbound || !BindingElements.Bindable(unbound)) return [];
                Emit(new PortLookupStarted(unbound.Id, unbound.Bridge!, unbound.MacAddress!));
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
                foreach (var (replyTo, version, addresses) in s.LearnsWaiting)
                    if (version <= applied.Version) Emit(new LearnAnswered(replyTo, CarriedOrWhy(s.Kernel.Sent, addresses)));
                break;

            case NftWriterEvents.Rejected r:
                if (r.Version != s.Kernel.Version) return [];
                Emit(new KernelRefused(r.Version, r.Error));
                foreach (var (replyTo, version, _) in s.LearnsWaiting)
                    if (version <= r.Version) Emit(new LearnAnswered(replyTo, "the kernel refused: " + r.Error));
                break;

            case ContainerStoreEvents.Recorded r:
                if (r.Ticket != s.Journal.Awaited) return [];
                Emit(new RecordConfirmed(r.Ticket));
                break;

            // still unanswered (an answer to an older ticket confirms nothing): the current facts
            // again, under a new ticket, so only the answer to this one confirms them
            case RetryRecord retryRecord:
                if (retryRecord.Ticket != s.Journal.Awaited || s.Facts is not { } unanswered) return [];
                var attempt = s.Journal.Attempts + 1;
                Emit(new RecordRequested(unanswered, s.Reasons(), s.Journal.Tickets + 1, RecordPatience(attempt), attempt));
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
    private static void FastPath(ContainerLifecycle s, Docker.DockerEvent e, long sentAfter, Action<IContainerEvent> emit)
    {
        switch (e)
        {
            case { Type: "container", Action: "create", Attributes: { } attributes } when s.Facts is null:
                var labels = attributes.Where(a => a.Key is not ("name" or "image")).ToImmutableDictionary();
                emit(new FactsLearned(new ContainerFacts(s.Id, attributes.GetValueOrDefault("name") ?? "", false, labels, [], [])));
                break;
            case { Type: "container", Action: "die" } when s.Facts is { } facts:
                emit(new FactsLearned(facts with { Running = false }, Died: true));
                break;
            case { Type: "network", Action: "disconnect", NetworkId: { } network } when s.Facts is { } facts:
                // counted even when the network is not in the facts yet: the answer of a lookup
                // still out from its `connect` must not put it back
                emit(new NetworkLeft(network));
                if (facts.Networks.Any(n => n.Id == network))
                    emit(new FactsLearned(facts with { Networks = [.. facts.Networks.Where(n => n.Id != network)] }));
                break;
            case { Type: "network", Action: "connect", NetworkId: { } network }
                when s.Facts is not null && (s.Decision.Policy.IsManaged || s.Context.Decision.Gateway is not null):
                emit(new EndpointLookupStarted(network, s.Inspection.Started, s.Losses, sentAfter));
                break;
        }
    }

    /// <summary>Brings everything in step with the facts: the decision (only when its inputs
    /// changed), the names and peers it watches, the compiled wish, the writer (the kernel first:
    /// nothing waits for the journal, which is written behind it), the journal, the port lookups,
    /// and what metrics and status are told.</summary>
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
            var decision = ContainerDecider.Decide(s.Context.Decision, facts);
            Emit(new PolicyDecided(decision, inputs));
            var policy = decision.Policy.EffectivePolicy;
            // wildcards (DNS proxy only) are learned from the container's lookups, never resolved ahead
            var hosts = policy.Output.SelectMany(r => r.HostsOrEmpty).Where(h => !h.StartsWith('*')).ToImmutableHashSet();
            if (s.Context.HasHostnames && !hosts.SetEquals(s.WatchedHosts)) Emit(new HostsWatched(hosts));
            var references = policy.ContainerReferences.ToImmutableHashSet();
            if (!references.SetEquals(s.WatchedPeers)) Emit(new PeersWatched(references, facts.ComposeProject));
        }

        var compiled = Compiler.Compile(facts, s.Decision.Policy, s.Peers, s.HostsWithLearned(), s.Context.Binding, proxied: s.Decision.Dns is not null,
            audit: s.Decision.Mode == PolicyMode.Audit);
        if (compiled.Error != s.CompileError) Emit(new CompileChecked(compiled.Error));
        var wish = compiled.Fragment;
        var removal = wish.IsEmpty;

        if (!SameWish(s.Kernel.Sent, wish))
            Emit(new FragmentSent(wish, s.Kernel.Version + 1, s.Kernel.EventSince));
        else if (s.Kernel.EventSince != 0)
            Emit(new EventsAbsorbed());
        // the journal lets a restart enforce at once; the kernel never waits for it (a restart
        // after `kill -9` keeps what the old table held until Docker is asked: NftWriterActor)
        var journalled = !s.Context.HasStore || FactsComparer.Same(s.Journal.Recorded, facts);
        if (!journalled && (s.Journal.Awaited == 0 || !FactsComparer.Same(s.Journal.Requested, facts)))
            Emit(new RecordRequested(facts, s.Reasons(), s.Journal.Tickets + 1, RecordPatience(0)));

        // ports of bridge networks not known yet: the binding waits for them (it sends nothing meanwhile)
        if (s.Context.Binding.Enabled && facts.Running && s.SeenByDocker)
            foreach (var n in facts.Networks.Where(n => n.Port is null && BindingElements.Bindable(n)))
                if (!s.PortLookups.TryGetValue(n.Id, out var lookup) || (!lookup.Running && lookup.Failures == 0))
                    Emit(new PortLookupStarted(n.Id, n.Bridge!, n.MacAddress!));

        var (state, reasons) = s.Status();
        if (!ReferenceEquals(s.Published.Facts, facts) || s.Published.State != state || !s.Published.Reasons.SequenceEqual(reasons))
            Emit(new StatePublished(facts, state, reasons, s.Decision.Mode, s.Decision.Learn));
    }

    /// <summary>The daemon's resolutions with the proxy's learned addresses added (what the compiler gets).</summary>
    /// Only while the container is proxied: learned addresses (restored ones included) never
    /// outlive the proxy's decision for it.
    private IReadOnlyDictionary<string, HostAddresses> HostsWithLearned()
    {
        if (Learned.IsEmpty || Decision.Dns is null) return Hosts;
        var merged = Hosts.ToBuilder();
        foreach (var (name, addresses) in Learned)
        {
            var own = Hosts.TryGetValue(name, out var resolved) ? resolved.Addresses : [];
            merged[name] = new HostAddresses(name, [.. own, .. addresses.Select(kv => (kv.Key, kv.Value))]);
        }
        return merged.ToImmutable();
    }

    /// <summary>New facts from Docker keep the ports WhaleWall found for the same network and MAC
    /// (Docker does not know them).</summary>
    public static ContainerFacts KeepPorts(ContainerFacts? old, ContainerFacts next)
    {
        if (old is null || old.Networks.All(n => n.Port is null)) return next;
        return next with
        {
            Networks = [.. next.Networks.Select(n => n.Port is null &&
                old.Networks.FirstOrDefault(o => o.Id == n.Id && o.MacAddress == n.MacAddress && o.Port is not null) is { } known
                    ? n with { Port = known.Port, Bridge = n.Bridge ?? known.Bridge }
                    : n)],
        };
    }

    /// <summary>Why the container is in its state, escaped for logs: label errors, the compiler's
    /// refusal, what WhaleWall cannot see, the kernel's refusal.</summary>
    public ImmutableArray<string> Reasons()
    {
        var reasons = Decision.Reasons(Compiled).ToBuilder();
        if (Kernel.Error is { } k && Decision.Policy.IsManaged) reasons.Add(Firewall.Decide.Decision.Escape("the kernel refused its rules: " + k));
        return reasons.ToImmutable();
    }

    private CompileResult Compiled => new(Fragment.Empty(Id), CompileError);

    /// <summary>What metrics and status are told. An unfilterable container stays unfilterable
    /// when the kernel refuses the part WhaleWall can see (the refusal is among its reasons).</summary>
    public (ContainerState State, ImmutableArray<string> Reasons) Status() => (Decision.After(Compiled) switch
    {
        Outcome.Unmanaged => ContainerState.Unmanaged,
        Outcome.FailClosed => ContainerState.FailClosed,
        Outcome.Unfilterable => ContainerState.Unfilterable,
        _ when Kernel.Error is not null => ContainerState.Rejected,
        _ => ContainerState.Enforced,
    }, Reasons());

    /// <summary>Same elements with the same expiries, same chains: a DNS answer that only pushes
    /// expiries further is a new wish (the writer renews the kernel's timeouts).</summary>
    public static bool SameWish(Fragment? a, Fragment b)
    {
        if (a is null) return false;
        if (a.Elements.Length != b.Elements.Length || !a.ChainsOrEmpty.SequenceEqual(b.ChainsOrEmpty) ||
            !a.BridgeOrEmpty.SequenceEqual(b.BridgeOrEmpty)) return false;
        for (var i = 0; i < a.Elements.Length; i++)
            if (!a.Elements[i].Equals(b.Elements[i]) || a.Elements[i].Expires != b.Elements[i].Expires) return false;
        return true;
    }

    /// <summary>How long a record may go unanswered before it is sent again: 5 s, 10 s, ... 30 s (the
    /// store's own restart backoff reaches 30 s; a write normally takes milliseconds, and a record
    /// sent twice is recorded once).</summary>
    private static TimeSpan RecordPatience(int attempt) =>
        TimeSpan.FromSeconds(Math.Min(MaxBackoff.TotalSeconds, 5 * Math.Pow(2, Math.Min(attempt, 10))));

    private static TimeSpan Backoff(int failures) =>
        TimeSpan.FromSeconds(Math.Min(MaxBackoff.TotalSeconds, Math.Pow(2, Math.Min(failures, 10)) / 2));
}
