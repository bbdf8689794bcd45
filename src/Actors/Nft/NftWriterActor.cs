using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using WhaleWall.Actors.Metrics;
using WhaleWall.Firewall.Nft;
using static WhaleWall.Actors.Nft.NftWriterCommands;
using static WhaleWall.Actors.Nft.NftWriterEvents;

namespace WhaleWall.Actors.Nft;

/// <summary>The only code that talks to the kernel. Requests that arrive together are
/// coalesced into one atomic transaction; a failed batch is retried owner by owner so one
/// bad container cannot block the others, and each owner is told how it went.</summary>
public sealed class NftWriterActor : ReceiveActor, IWithTimers
{
    public const string DispatcherId = "whalewall-nft-dispatcher";
    private static readonly TimeSpan StartupGrace = TimeSpan.FromSeconds(60);

    private readonly INftables nft;
    private readonly string table;
    private readonly ILoggingAdapter log = Context.GetLogger();
    private readonly Dictionary<string, (Program Program, IActorRef ReplyTo)> pending = new();
    private KernelState state = KernelState.Empty;
    private ImmutableHashSet<string>? expected;
    private bool flushScheduled;
    private readonly Dictionary<string, int> setSizes = new();

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>The clock DNS expiries are measured with (the scheduler's, so tests can drive it).</summary>
    private DateTimeOffset Now => Context.System.Scheduler.Now;

    private readonly bool logDrops;

    public NftWriterActor(INftables nft, string table, bool logDrops = false)
    {
        this.nft = nft;
        this.table = table;
        this.logDrops = logDrops;
        Become(Starting);
    }

    public static Props Props(INftables nft, string table, bool logDrops = false) =>
        Akka.Actor.Props.Create(() => new NftWriterActor(nft, table, logDrops)).WithDispatcher(DispatcherId);

    private void Starting()
    {
        Receive<ExpectOwners>(m =>
        {
            expected = m.Owners;
            Timers.StartSingleTimer(StartupTimeout.Instance, StartupTimeout.Instance, StartupGrace);
            TryBuildTable(force: false);
        });
        Receive<Program>(p =>
        {
            pending[p.Fragment.Owner] = (p, Sender);
            TryBuildTable(force: false);
        });
        Receive<StartupTimeout>(_ => TryBuildTable(force: true));
    }

    private void Running()
    {
        Receive<Program>(p =>
        {
            pending[p.Fragment.Owner] = (p, Sender);
            if (flushScheduled) return;
            flushScheduled = true;
            Self.Tell(Flush.Instance); // runs after everything already in the mailbox
        });
        Receive<Flush>(_ => FlushPending());
        Receive<ExpectOwners>(_ => { });
        Receive<StartupTimeout>(_ => { });
    }

    private void TryBuildTable(bool force)
    {
        if (expected is null) return;
        // Cheap test first: fewer pending owners than expected means someone is missing. Without
        // it every Program scanned all expected owners: O(n^2), 52 s for 10,000 containers.
        if (!force && pending.Count < expected.Count) return;
        var missing = expected.Where(o => !pending.ContainsKey(o)).ToList();
        if (missing.Count > 0 && !force) return;
        if (missing.Count > 0)
            log.Warning("start-up: {0} containers did not report within {1}; building the table without them", missing.Count, StartupGrace);

        var batch = pending.Values.ToList();
        pending.Clear();
        var now = Now;
        var plan = KernelState.Empty.Replace(batch.Select(b => b.Program.Fragment), now);
        var watch = Stopwatch.StartNew();
        var existing = ExistingRuleChains();
        var result = Transaction("startup", NftJson.FullTable(table, plan.After.References.Keys, plan.After.ChainReferences.Keys, existing, now: now, logDrops: logDrops),
            plan.After.References.Count + plan.After.ChainReferences.Count);
        if (result.Ok)
        {
            state = plan.After;
            foreach (var (p, replyTo) in batch) replyTo.Tell(new Applied(p.Fragment.Owner, p.Version));
        }
        else
        {
            // Fail closed: a table with every container's addresses under drop-all first,
            // then each owner's allow elements on its own, so one bad policy stays alone.
            log.Error("start-up transaction rejected ({0}); building drop-all table and retrying per container", result.Error.Trim());
            var dropAll = batch.Select(b => new Fragment(b.Program.Fragment.Owner,
                [.. b.Program.Fragment.Elements.Where(e => NftSets.KeptWhenFailClosed(e.Set))], []));
            var bare = KernelState.Empty.Replace(dropAll);
            var fallback = Transaction("startup", NftJson.FullTable(table, bare.After.References.Keys, [], existing, logDrops: logDrops), bare.After.References.Count);
            if (!fallback.Ok)
            {
                // An incompatible table (an older layout): replace it whole, still in one transaction.
                log.Warning("cannot reuse table {0} ({1}); replacing it", table, fallback.Error.Trim());
                fallback = Transaction("startup", NftJson.ReplaceTable(table, bare.After.References.Keys, logDrops), bare.After.References.Count);
            }
            if (!fallback.Ok)
                log.Error("drop-all table rejected too: {0}", fallback.Error.Trim());
            else
                state = bare.After;
            ApplyOneByOne(batch);
        }
        log.Info("initial sync complete: table {0} with {1} containers, {2} elements in {3} ms",
            table, state.Owners.Count, state.ElementCount, watch.ElapsedMilliseconds);
        CountElements();
        Context.System.EventStream.Publish(new TableReady(table, state.Owners.Count, state.ElementCount));
        expected = null;
        Timers.Cancel(StartupTimeout.Instance);
        Become(Running);
    }

    private void FlushPending()
    {
        flushScheduled = false;
        if (pending.Count == 0) return;
        var batch = pending.Values.ToList();
        pending.Clear();

        // New containers first, in a transaction of their own: deleting interval-set elements
        // costs the kernel far more than adding them (bench/), and a container that is starting
        // should not wait for others' removals.
        var (fresh, rest) = (batch.Where(IsNew).ToList(), batch.Where(b => !IsNew(b)).ToList());
        if (fresh.Count > 0 && rest.Count > 0)
        {
            Apply(fresh);
            Apply(rest);
        }
        else Apply(batch);
    }

    /// <summary>A container the kernel does not know yet, on addresses nobody else holds (an
    /// address being reused waits for its old owner's removal in the same transaction).</summary>
    private bool IsNew((Program Program, IActorRef ReplyTo) item) =>
        !state.Owners.ContainsKey(item.Program.Fragment.Owner) && !item.Program.Fragment.Elements.IsEmpty &&
        !item.Program.Fragment.Elements.Any(e => e.Set.StartsWith("managed", StringComparison.Ordinal) && state.References.ContainsKey(e));

    private void Apply(List<(Program Program, IActorRef ReplyTo)> batch)
    {
        var now = Now;
        var plan = state.Replace(batch.Select(b => b.Program.Fragment), now);
        if (plan.IsEmpty)
        {
            state = plan.After;
            Reply(batch);
            return;
        }
        var watch = Stopwatch.StartNew();
        var result = Transaction("changes", NftJson.Changes(table, plan.Deletes, plan.Adds, plan.ChainDeletes, plan.ChainAdds, now), Size(plan));
        if (result.Ok)
        {
            state = plan.After;
            CountElements(plan);
            log.Debug("applied {0} owners: -{1} +{2} elements in {3:0.0} ms",
                batch.Count, plan.Deletes.Length, plan.Adds.Length, watch.Elapsed.TotalMilliseconds);
            Reply(batch);
            return;
        }
        if (batch.Count == 1)
        {
            Reject(batch[0], result.Error);
            return;
        }
        log.Warning("batch of {0} owners rejected ({1}); retrying one by one", batch.Count, result.Error.Trim());
        ApplyOneByOne(batch);
    }

    private void ApplyOneByOne(IEnumerable<(Program Program, IActorRef ReplyTo)> batch)
    {
        foreach (var item in batch)
        {
            var now = Now;
            var plan = state.Replace([item.Program.Fragment], now);
            var result = plan.IsEmpty
                ? NftResult.Success()
                : Transaction("single", NftJson.Changes(table, plan.Deletes, plan.Adds, plan.ChainDeletes, plan.ChainAdds, now), Size(plan));
            if (result.Ok)
            {
                state = plan.After;
                CountElements(plan);
                Reply([item]);
            }
            else Reject(item, result.Error);
        }
    }

    /// <summary>Runs one transaction, timed and sized for the metrics.</summary>
    private NftResult Transaction(string kind, string json, int size)
    {
        var started = Stopwatch.GetTimestamp();
        var result = nft.Run(json);
        WhaleWallMetrics.NftTransactionSeconds.WithLabels(kind).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        WhaleWallMetrics.NftTransactionSize.WithLabels(kind).Observe(size);
        if (!result.Ok) WhaleWallMetrics.NftTransactionFailures.WithLabels(kind).Inc();
        return result;
    }

    private static int Size(KernelState.Plan plan) =>
        plan.Deletes.Length + plan.Adds.Length + plan.ChainDeletes.Length + plan.ChainAdds.Length;

    /// <summary>The set-elements gauge: recounted after a whole table, adjusted after changes.</summary>
    private void CountElements(KernelState.Plan? plan = null)
    {
        if (plan is null)
        {
            setSizes.Clear();
            foreach (var s in NftSets.All) setSizes[s.Name] = 0;
            foreach (var e in state.References.Keys) setSizes[e.Set] = setSizes.GetValueOrDefault(e.Set) + 1;
        }
        else
        {
            foreach (var e in plan.Deletes) setSizes[e.Set] = setSizes.GetValueOrDefault(e.Set) - 1;
            foreach (var e in plan.Adds) setSizes[e.Set] = setSizes.GetValueOrDefault(e.Set) + 1;
        }
        foreach (var (set, n) in setSizes) WhaleWallMetrics.SetElements.WithLabels(set).Set(n);
    }

    /// <summary>WhaleWall's per-rule chains left in the kernel by an earlier run.</summary>
    private IReadOnlyList<string> ExistingRuleChains()
    {
        var listing = nft.Run(NftJson.ListTable(table));
        return listing.Ok ? NftListing.ChainNames(listing.Output).Where(NftListing.IsRuleChain).ToList() : [];
    }

    private static void Reply(IEnumerable<(Program Program, IActorRef ReplyTo)> batch)
    {
        foreach (var (p, replyTo) in batch) replyTo.Tell(new Applied(p.Fragment.Owner, p.Version));
    }

    private void Reject((Program Program, IActorRef ReplyTo) item, string error)
    {
        log.Error("kernel rejected the rules of {0}: {1}", item.Program.Fragment.Owner, error.Trim());
        item.ReplyTo.Tell(new Rejected(item.Program.Fragment.Owner, item.Program.Version, error.Trim()));
    }

    private sealed class Flush
    {
        public static readonly Flush Instance = new();
    }

    private sealed class StartupTimeout
    {
        public static readonly StartupTimeout Instance = new();
    }
}

public sealed class NftWriter { }

public static class NftWriterActorExtensions
{
    public static AkkaConfigurationBuilder AddNftWriterActor(this AkkaConfigurationBuilder builder, INftables nft, string table, bool logDrops = false) =>
        builder
            .AddHocon($"{NftWriterActor.DispatcherId} {{ type = PinnedDispatcher }}", HoconAddMode.Prepend)
            .WithActors((system, registry) =>
                registry.Register<NftWriter>(system.ActorOf(NftWriterActor.Props(nft, table, logDrops), "nft-writer")));
}
