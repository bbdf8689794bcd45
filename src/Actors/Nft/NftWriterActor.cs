using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using WhaleWall.Actors.Metrics;
using WhaleWall.Firewall.Binding;
using WhaleWall.Firewall.Nft;
using static WhaleWall.Actors.Nft.NftWriterCommands;
using static WhaleWall.Actors.Nft.NftWriterEvents;

namespace WhaleWall.Actors.Nft;

/// <summary>The only code that talks to the kernel, and the only owner of the difference
/// between what the containers want and what the kernel holds (expiry renewals included).
/// Requests that arrive together are coalesced into one atomic transaction; a failed batch is
/// retried owner by owner so one bad container cannot block the others. The writer heals
/// itself: an owner the kernel refuses is drop-all and retried with backoff; a removal the
/// kernel refuses (the kernel no longer holds what the writer thinks) and any internal error
/// make it rebuild the whole table in one transaction; its state lives in a
/// <see cref="WriterMemory"/> that an actor restart does not lose, so it never falls back into
/// its start-up mode.</summary>
public sealed class NftWriterActor : ReceiveActor, IWithTimers
{
    public const string DispatcherId = "whalewall-nft-dispatcher";
    private static readonly TimeSpan StartupGrace = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    private readonly INftables nft;
    private readonly string table;
    private readonly WriterMemory memory;
    private readonly WriterProgress progress;
    private readonly TableBuilder builder;
    private readonly ILoggingAdapter log = Context.GetLogger();
    private readonly WriterOptions options;
    private readonly Dictionary<string, int> setSizes = new();
    private bool flushScheduled;
    private bool cutQueued;

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>The clock DNS expiries are measured with (the scheduler's, so tests can drive it).</summary>
    private DateTimeOffset Now => Context.System.Scheduler.Now;

    public NftWriterActor(INftables nft, string table, bool logDrops, WriterMemory memory, WriterProgress progress, WriterOptions options)
    {
        this.nft = new WatchedNftables(nft, progress); // every kernel call seen by the watchdog
        this.table = table;
        this.memory = memory;
        this.progress = progress;
        this.options = options;
        builder = new TableBuilder(this.nft, table, logDrops, options.Bridge, Transaction);
        if (memory.TableBuilt) BecomeRunning(); else Become(Starting);
    }

    public static Props Props(INftables nft, string table, bool logDrops = false, WriterProgress? progress = null, WriterOptions? options = null)
    {
        var memory = new WriterMemory(); // one per writer: shared by every incarnation the supervisor creates
        progress ??= new WriterProgress();
        options ??= WriterOptions.Default;
        return Akka.Actor.Props.Create(() => new NftWriterActor(nft, table, logDrops, memory, progress, options)).WithDispatcher(DispatcherId);
    }

    private void BecomeRunning()
    {
        Become(Running);
        if (memory.CutFrom.Count > 0) ScheduleCut();
        // lenient mode: guards lapse unless renewed (delete + add restarts a kernel timeout)
        if (options.Bridge && options.GuardLease is { } lease)
            Timers.StartPeriodicTimer("guards", RenewGuards.Instance, lease / 3);
        // DNS addresses the kernel times out change what a container may reach, with no change
        // passing through here: their flows are checked when they expire
        if (options.Flows is not null)
            Timers.StartPeriodicTimer("expiries", SweepExpired.Instance, ExpirySweep);
    }

    private static readonly TimeSpan ExpirySweep = TimeSpan.FromSeconds(2);
    private DateTimeOffset expiredUpTo = DateTimeOffset.MinValue;

    /// <summary>How long after an element's expiry the kernel may still hold it: its timeout is
    /// the seconds left rounded up (NftJson: up to 1 s more, so the kernel never lets an element go
    /// before the writer stops counting on it), counted from when the transaction reached the
    /// kernel (well under a second after its clock read). The sweep looks at an expiry only this
    /// long after it, so no flow can start after the sweep that cuts it.</summary>
    private static readonly TimeSpan CommitLag = TimeSpan.FromSeconds(2);

    /// <summary>Elements whose kernel timeout ran out since the last sweep: the flows of their
    /// owners that the table without them no longer allows are cut (a DNS answer that moved on,
    /// the grace over).</summary>
    private void CutExpiredFlows()
    {
        var now = Now - CommitLag;
        var since = expiredUpTo;
        expiredUpTo = now;
        bool Expired(Element e) => e.Expires is { } until && until <= now;
        var changes = memory.Kernel.Owners.Values
            .Where(f => f.Elements.Any(e => e.Expires is { } until && until > since && until <= now))
            .Select(f => (f, f with { Elements = [.. f.Elements.Where(e => !Expired(e))] }))
            .ToList();
        if (changes.Count == 0) return;
        try
        {
            var cut = progress.Busy(() => options.Flows!.Cut(changes, memory.Kernel.References.Keys.Where(e => !Expired(e))));
            if (cut > 0) log.Info("deleted {0} conntrack entries that expired DNS addresses no longer allow", cut);
        }
        catch (Exception e)
        {
            log.Error(e, "conntrack: could not delete the flows expired DNS addresses no longer allow");
        }
    }

    /// <summary>A writer that stops (the daemon ends) still cuts the flows that wait.</summary>
    protected override void PostStop()
    {
        if (memory.CutFrom.Count > 0) CutPendingFlows();
        base.PostStop();
    }

    protected override void PostRestart(Exception reason)
    {
        log.Error(reason, "writer restarted after an internal error; rebuilding the table from what it knows");
        memory.ResyncScheduled = false; // its timer went with the failed instance
        if (memory.TableBuilt) ScheduleResync("error");
        else if (memory.Expected is not null)
        {
            Timers.StartSingleTimer(StartupTimeout.Instance, StartupTimeout.Instance, StartupGrace);
            memory.ResyncFailures++;
            ScheduleResync("error");
        }
        foreach (var (owner, refusal) in memory.Refused)
            Timers.StartSingleTimer("retry-" + owner, new Retry(owner, refusal.Version), Backoff(refusal.Attempts));
    }

    private void Starting()
    {
        Receive<ExpectOwners>(m => Safely(() =>
        {
            memory.Expected = m.Owners;
            memory.Missing = [.. m.Owners.Where(o => !memory.Desired.ContainsKey(o))];
            Timers.StartSingleTimer(StartupTimeout.Instance, StartupTimeout.Instance, StartupGrace);
            TryBuildTable(force: false);
        }));
        Receive<Program>(p => Safely(() =>
        {
            Want(p);
            TryBuildTable(force: false);
        }));
        Receive<StartupTimeout>(_ => Safely(() => TryBuildTable(force: true)));
        // a start-up table the kernel refused, or an internal error: the next attempt
        Receive<Resync>(_ => Safely(() =>
        {
            memory.ResyncScheduled = false;
            TryBuildTable(force: false);
        }));
        Receive<Retry>(_ => { });
        Receive<RenewGuards>(_ => { });
        Receive<SweepExpired>(_ => { });
        Receive<CollectGarbage>(_ => { });
        Receive<CutFlowsNow>(_ => cutQueued = false);
    }

    private void Running()
    {
        Receive<Program>(p => Safely(() =>
        {
            Want(p);
            if (flushScheduled) return;
            flushScheduled = true;
            Self.Tell(Flush.Instance); // runs after everything already in the mailbox
        }));
        Receive<Flush>(_ => Safely(FlushPending));
        Receive<CutFlowsNow>(_ => Safely(() =>
        {
            cutQueued = false;
            CutWhenDue();
        }));
        Receive<Retry>(r => Safely(() =>
        {
            if (!memory.Refused.TryGetValue(r.Owner, out var refusal) || refusal.Version != r.Version) return;
            if (!memory.Desired.TryGetValue(r.Owner, out var wanted) || wanted.Version != r.Version) return;
            memory.Dirty.Add(r.Owner);
            FlushPending();
        }));
        Receive<Resync>(r => Safely(() =>
        {
            memory.ResyncScheduled = false;
            BuildWholeTable("resync");
        }));
        Receive<RenewGuards>(_ => Safely(RenewLeases));
        Receive<SweepExpired>(_ => Safely(CutExpiredFlows));
        Receive<CollectGarbage>(_ => Safely(Collect));
        Receive<ExpectOwners>(_ => { });
        Receive<StartupTimeout>(_ => { });
    }

    /// <summary>Runs a handler; an exception does not restart the writer into start-up mode: the
    /// whole table is rebuilt from what it knows (one transaction), which heals whatever the
    /// failed step left half done: at once after the first error, with backoff while errors
    /// follow one another (a rebuild that fails the same way must not spin). During start-up the
    /// start-up table is tried again, with backoff (it is not in the kernel yet).</summary>
    private void Safely(Action handler)
    {
        try { handler(); }
        catch (Exception e)
        {
            memory.ResyncFailures++;
            if (memory.TableBuilt) log.Error(e, "writer: internal error; rebuilding the table from what it knows in {0:0} s", ResyncDelay().TotalSeconds);
            else log.Error(e, "writer: internal error during start-up; trying the start-up table again in {0:0} s", ResyncDelay().TotalSeconds);
            ScheduleResync("error");
        }
    }

    private void Want(Program p)
    {
        memory.Desired[p.Fragment.Owner] = new Wanted(p.Fragment, p.Version, Sender, ReceivedAt: Stopwatch.GetTimestamp());
        memory.Dirty.Add(p.Fragment.Owner);
        memory.Missing.Remove(p.Fragment.Owner);
    }

    /// <summary>The kernel refused exactly the owner's current wish (a newer one deserves a try).</summary>
    private bool IsRefused(string owner) =>
        memory.Refused.TryGetValue(owner, out var r) && r.Version == memory.Desired[owner].Version;

    /// <summary>The start-up table, once every expected owner reported (or the grace is over).
    /// Announced ready only once it is in the kernel: an attempt that fails (refused, or an
    /// internal error) is tried again with backoff, and the writer stays starting meanwhile.</summary>
    private void TryBuildTable(bool force)
    {
        if (memory.Expected is null) return;
        // after a failed attempt the next waits for its backoff, not for the next Program
        if (memory.ResyncScheduled && !force) return;
        // the owners still missing are kept as a set: scanning every expected owner at every
        // Program was O(n^2), 52 s for 10,000 containers
        var missing = memory.Missing.Count;
        if (missing > 0 && !force) return;
        if (missing > 0)
            log.Warning("start-up: {0} containers did not report within {1}; building the table without them", missing, StartupGrace);
        memory.Missing.Clear(); // decided: a retry of this table waits for nobody

        var watch = Stopwatch.StartNew();
        if (!BuildWholeTable("startup")) return;
        log.Info("initial sync complete: table {0} with {1} containers, {2} elements in {3} ms",
            table, memory.Kernel.Owners.Count, memory.Kernel.ElementCount, watch.ElapsedMilliseconds);
        memory.Expected = null;
        memory.TableBuilt = true;
        Timers.Cancel(StartupTimeout.Instance);
        Timers.Cancel("resync");
        memory.ResyncScheduled = false;
        Context.System.EventStream.Publish(new TableReady(table, memory.Kernel.Owners.Count, memory.Kernel.ElementCount));
        BecomeRunning();
    }

    /// <summary>The whole table in one transaction, from every owner's wish (drop-all for those
    /// the kernel refused); owners the kernel refuses now are found and made drop-all in the
    /// same transaction. False: the kernel refused even that (retried with backoff).</summary>
    private bool BuildWholeTable(string kind)
    {
        var owners = memory.Desired.Keys.Order(StringComparer.Ordinal).ToList();
        var wished = owners.Select(o => IsRefused(o)
            ? TableBuilder.DropAll(memory.Desired[o].Fragment)
            : memory.Desired[o].Fragment).ToList();
        memory.Withheld.Clear();
        var holders = AddressClaims.Holders(wished);
        var fragments = wished.Select(f => Withhold(f, AddressClaims.Among(holders, f))).ToList();
        var before = memory.Kernel;
        var outcome = builder.Build(fragments, Now);
        if (!outcome.Ok)
        {
            memory.ResyncFailures++;
            progress.Failing(outcome.Error);
            log.Error("{0}: the kernel refused WhaleWall's table even with every container drop-all ({1}); the previous table stays; retrying in {2:0} s",
                kind, outcome.Error, Backoff(memory.ResyncFailures).TotalSeconds);
            memory.ResyncScheduled = true;
            Timers.StartSingleTimer("resync", Resync.Instance, Backoff(memory.ResyncFailures));
            return false;
        }
        // known in advance (a missing verdict chain) or found by dry runs: said either way
        if (outcome.Refused.Count > 0)
            log.Warning("{0}: the kernel refused {1} containers' rules ({2} dry runs to find them); they are drop-all, the others intact",
                kind, outcome.Refused.Count, outcome.DryRuns);
        memory.Kernel = outcome.State;
        // a rebuild applies changes too (a refused removal, a resync): what they no longer allow
        // goes as after any other commit
        CutFlows(before, [.. before.Owners.Keys.Select(o => outcome.State.Owners.TryGetValue(o, out var now) ? now : Fragment.Empty(o))]);
        memory.ResyncFailures = 0;
        progress.Failing(null);
        CountElements(outcome.Elements);
        foreach (var owner in owners)
        {
            if (outcome.Refused.TryGetValue(owner, out var error))
            {
                if (!IsRefused(owner)) Refuse(owner, error, tryFallback: false);
            }
            else if (IsRefused(owner)) continue; // still drop-all: its retry timer tries its wish again
            else if (!memory.Desired[owner].Answered || memory.Desired[owner].Fragment.IsEmpty) Settle(owner);
        }
        memory.Dirty.Clear();
        return true;
    }

    private void FlushPending()
    {
        flushScheduled = false;
        if (memory.Dirty.Count == 0) return;
        var batch = memory.Dirty.Where(memory.Desired.ContainsKey).Order(StringComparer.Ordinal).ToList();
        memory.Dirty.Clear();

        // New containers first, in a transaction of their own: deleting interval-set elements
        // costs the kernel far more than adding them (bench/), and a container that is starting
        // should not wait for others' removals.
        var fresh = batch.Where(IsNew).ToList();
        var rest = batch.Except(fresh).ToList();
        Apply(fresh);
        Apply(rest);
        ScheduleCollection(options.CollectIdle);
    }

    /// <summary>Collection waits until the writer has been idle this long: every flush restarts the
    /// wait, but only for <see cref="WriterOptions.CollectAtLatest"/>. After that the wait is left to
    /// end: a steady trickle of changes (a container whose DNS answers renew every few hundred ms)
    /// must not keep what containers that went left growing in the sets.</summary>
    private void ScheduleCollection(TimeSpan after)
    {
        if (memory.Kernel.Garbage.IsEmpty) return;
        if (!Timers.IsTimerActive(CollectGarbage.Instance)) memory.CollectWaitSince = Stopwatch.GetTimestamp();
        else if (Stopwatch.GetElapsedTime(memory.CollectWaitSince) >= options.CollectAtLatest) return;
        Timers.StartSingleTimer(CollectGarbage.Instance, CollectGarbage.Instance, after);
    }

    /// <summary>Deletes one small batch of the interval elements containers that went left behind
    /// (<see cref="KernelState.Garbage"/>), then waits a little before the next, so a change that
    /// arrives meanwhile goes first. A delete the kernel refuses means it does not hold what the
    /// writer thinks: the table is rebuilt.</summary>
    private void Collect()
    {
        if (memory.Kernel.Garbage.IsEmpty) return;
        if (memory.Dirty.Count > 0)
        {
            // the changes waiting go first (their flush is in the mailbox); the wait goes on
            Timers.StartSingleTimer(CollectGarbage.Instance, CollectGarbage.Instance, options.CollectPause);
            return;
        }
        var plan = memory.Kernel.Collect(options.CollectBatch);
        var result = Transaction("collect", Changes(plan, Now), Size(plan));
        if (!result.Ok)
        {
            log.Warning("the kernel refused deleting {0} elements left by containers that went ({1}); rebuilding the table",
                plan.Deletes.Length, result.Error.Trim());
            ScheduleResync("refused_collect");
            return;
        }
        memory.Kernel = plan.After;
        CountElements(plan);
        ScheduleCollection(options.CollectPause);
    }

    /// <summary>A container the kernel does not know yet, on addresses nobody else holds (an
    /// address being reused waits for its old owner's removal in the same transaction).</summary>
    private bool IsNew(string owner)
    {
        var fragment = memory.Desired[owner].Fragment;
        return !memory.Kernel.Owners.ContainsKey(owner) && !fragment.Elements.IsEmpty &&
               !fragment.Elements.Any(e => e.Set.StartsWith("managed", StringComparison.Ordinal) && memory.Kernel.References.ContainsKey(e));
    }

    private void Apply(List<string> owners)
    {
        if (owners.Count == 0) return;
        var batch = new List<string>();
        foreach (var owner in owners)
        {
            if (ChainCollisions.Against(memory.Kernel, memory.Desired[owner].Fragment) is { } why) Refuse(owner, why, tryFallback: true);
            else batch.Add(owner);
        }
        foreach (var (owner, why) in ChainCollisions.Find(batch.Select(o => memory.Desired[o].Fragment)))
        {
            batch.Remove(owner);
            Refuse(owner, why, tryFallback: true);
        }
        if (batch.Count == 0) return;

        var now = Now;
        var wished = batch.Select(o => memory.Desired[o].Fragment).ToList();
        // an address whose flows still wait to be cut goes to another owner: cut them first
        if (TakesPendingAddress(wished)) CutPendingFlows();
        var inBatch = AddressClaims.Holders(wished);
        var fragments = wished.Select(f => Withhold(f, AddressClaims.Against(memory.Kernel, inBatch, f))).ToList();
        var before = memory.Kernel;
        var plan = before.Replace(fragments, now, options.RenewByAdd);
        var result = plan.IsEmpty
            ? NftResult.Success()
            : Transaction(batch.Count == 1 ? "single" : "changes", Changes(plan, now), Size(plan));
        if (result.Ok)
        {
            memory.Kernel = plan.After;
            DeleteLingering(plan.Lingering);
            CountElements(plan);
            CutFlows(before, fragments);
            // ... or goes to another owner in this very transaction: cut before it can open any
            if (TakesPendingAddress(fragments)) CutPendingFlows();
            foreach (var owner in batch) Settle(owner);
            ReleaseWithheld();
            return;
        }
        if (batch.Count == 1)
        {
            Refuse(batch[0], result.Error.Trim(), tryFallback: true);
            return;
        }
        log.Warning("batch of {0} owners rejected ({1}); retrying one by one", batch.Count, result.Error.Trim());
        foreach (var owner in batch) Apply([owner]);
    }

    /// <summary>The owner's wish is in the kernel: tell it (a removal is then forgotten).</summary>
    private void Settle(string owner)
    {
        var wanted = memory.Desired[owner];
        if (memory.Refused.Remove(owner))
        {
            Timers.Cancel("retry-" + owner);
            log.Info("the kernel took the rules of {0} on retry", owner);
        }
        progress.Retrying = memory.Refused.Count;
        if (wanted.Fragment.IsEmpty) memory.Desired.Remove(owner);
        else memory.Desired[owner] = wanted with { Answered = true, ReceivedAt = 0 };
        if (wanted.ReceivedAt != 0) WhaleWallMetrics.WriterProgramSeconds.Observe(Stopwatch.GetElapsedTime(wanted.ReceivedAt).TotalSeconds);
        wanted.ReplyTo.Tell(new Applied(owner, wanted.Version));
    }

    /// <summary>The kernel refused the owner's wish. A removal can only be refused when the kernel
    /// no longer holds what the writer thinks: the whole table is rebuilt. Anything else leaves the
    /// owner drop-all (its addresses stay under policy, its allow elements go), it is told, and the
    /// writer retries its wish with backoff. An owner that holds no container addresses (the
    /// gateway networks) keeps what it had in the kernel meanwhile.</summary>
    private void Refuse(string owner, string error, bool tryFallback)
    {
        var wanted = memory.Desired[owner];
        if (wanted.Fragment.IsEmpty)
        {
            log.Warning("the kernel refused removing the rules of {0} ({1}); rebuilding the table", owner, error);
            ScheduleResync("refused_removal");
            return;
        }
        var fallback = Withhold(TableBuilder.DropAll(wanted.Fragment), AddressClaims.Against(memory.Kernel, AddressClaims.NoBatch, wanted.Fragment));
        var holdsContainer = !fallback.Elements.IsEmpty;
        if (tryFallback && holdsContainer)
        {
            var now = Now;
            var plan = memory.Kernel.Replace([fallback], now, options.RenewByAdd);
            var result = plan.IsEmpty
                ? NftResult.Success()
                : Transaction("single", Changes(plan, now), Size(plan));
            if (result.Ok)
            {
                var was = memory.Kernel;
                memory.Kernel = plan.After;
                DeleteLingering(plan.Lingering);
                CountElements(plan);
                CutFlows(was, [fallback]);
            }
            else ScheduleResync("refused_fallback");
        }
        var attempts = memory.Refused.TryGetValue(owner, out var before) ? before.Attempts + 1 : 1;
        memory.Refused[owner] = new Refusal(wanted.Version, error, attempts);
        progress.Retrying = memory.Refused.Count;
        var retry = Backoff(attempts);
        if (before is null || before.Error != error)
            log.Error("kernel rejected the rules of {0}: {1}; {2}, retrying with backoff", owner, error,
                holdsContainer ? "its addresses are drop-all meanwhile" : "its previous elements stay meanwhile");
        else log.Debug("kernel rejected the rules of {0} again; next retry in {1:0} s", owner, retry.TotalSeconds);
        memory.Desired[owner] = wanted with { Answered = true, ReceivedAt = 0 };
        wanted.ReplyTo.Tell(new Rejected(owner, wanted.Version, error));
        Timers.StartSingleTimer("retry-" + owner, new Retry(owner, wanted.Version), retry);
    }

    /// <summary>Deletes elements that nobody holds and that the kernel is about to time out (or
    /// has): all in one transaction, or, when that fails because one is gone already, one by one,
    /// where a failure means just that. Before the next change, so a container that takes over
    /// the address never inherits them.</summary>
    private void DeleteLingering(ImmutableArray<Element> lingering)
    {
        if (lingering.IsEmpty) return;
        // not counted as transaction failures: an element already gone is what is expected
        if (nft.Run(NftJson.Changes(table, lingering, [])).Ok) return;
        foreach (var element in lingering) nft.Run(NftJson.Changes(table, [element], []));
    }

    private string Changes(KernelState.Plan plan, DateTimeOffset now) =>
        NftJson.Changes(table, plan.Deletes, plan.Adds, plan.ChainDeletes, plan.ChainAdds, now,
            options.Bridge ? BridgeLayout.ChangeCommands(table, plan.BridgeDeletes, plan.BridgeAdds) : null);

    /// <summary>The fragment as it may go in now (<see cref="AddressClaims"/>); an owner whose port
    /// elements wait is remembered and flushed again once the address is free.</summary>
    private Fragment Withhold(Fragment wished, Func<BridgeElement, bool> heldByOther)
    {
        if (!options.Bridge) return wished with { Bridge = [] };
        var fragment = AddressClaims.Withhold(wished, heldByOther, out var withheld);
        if (!withheld) memory.Withheld.Remove(wished.Owner);
        else if (memory.Withheld.Add(wished.Owner))
            log.Warning("{0}: another container still holds its address; its port stays closed until that one's rules are gone", wished.Owner);
        return fragment;
    }

    /// <summary>Owners waiting for an address: tried again after every commit (cheap: their
    /// number is tiny, and a retry that still waits changes nothing).</summary>
    private void ReleaseWithheld()
    {
        if (memory.Withheld.Count == 0) return;
        foreach (var owner in memory.Withheld.ToList())
        {
            if (!memory.Desired.TryGetValue(owner, out var wanted)) { memory.Withheld.Remove(owner); continue; }
            AddressClaims.Withhold(wanted.Fragment, AddressClaims.Against(memory.Kernel, AddressClaims.NoBatch, wanted.Fragment), out var still);
            if (still) continue;
            memory.Dirty.Add(owner);
            if (flushScheduled) continue;
            flushScheduled = true;
            Self.Tell(Flush.Instance);
        }
    }

    /// <summary>Notes the changed owners whose flows may have to go; the conntrack table is read
    /// when they are due (<see cref="CutWhenDue"/>), once for all of them.
    /// Reading it walks the kernel's whole conntrack hash table (~8 ms with 262,144 buckets, however
    /// few entries it holds), which used to happen after every transaction that narrowed or removed
    /// a container, ahead of the changes queued behind it. A new owner has no flows to cut.</summary>
    private void CutFlows(KernelState before, IReadOnlyList<Fragment> fragments)
    {
        if (options.Flows is null) return;
        foreach (var f in fragments)
            if (before.Owners.TryGetValue(f.Owner, out var was) && FlowCutter.MayCut(was, f))
            {
                if (memory.CutFrom.Count == 0) memory.CutPendingSince = Stopwatch.GetTimestamp();
                memory.CutFrom.TryAdd(f.Owner, was);
            }
        if (memory.CutFrom.Count > 0) ScheduleCut();
    }

    private void ScheduleCut()
    {
        if (cutQueued) return;
        cutQueued = true;
        Self.Tell(CutFlowsNow.Instance); // after everything already in the mailbox
    }

    /// <summary>Cuts the waiting flows once they are due. A container whose rules narrowed still
    /// runs: its flows go as soon as the changes already waiting are applied (at most
    /// <see cref="WriterOptions.CutPatience"/> while more keep arriving). A container that went has
    /// no process behind its flows and its address is nobody's (an owner that takes it has them
    /// cut first): its flows wait up to <see cref="WriterOptions.RemovalCutPatience"/>, so the
    /// removals of a busy moment share one read.</summary>
    private void CutWhenDue()
    {
        if (memory.CutFrom.Count == 0) return;
        var narrowed = memory.CutFrom.Keys.Any(memory.Kernel.Owners.ContainsKey);
        var patience = narrowed ? options.CutPatience : options.RemovalCutPatience;
        var waited = Stopwatch.GetElapsedTime(memory.CutPendingSince);
        if (waited >= patience || (narrowed && !flushScheduled))
        {
            Timers.Cancel(CutTimer);
            CutPendingFlows();
        }
        else if (narrowed) ScheduleCut(); // behind the changes waiting in the mailbox
        else if (!Timers.IsTimerActive(CutTimer)) Timers.StartSingleTimer(CutTimer, CutFlowsNow.Instance, patience - waited);
    }

    private const string CutTimer = "cut";

    /// <summary>One read of the conntrack table for every owner changed since the last cut: each
    /// compared from what the kernel held before its first change to what it holds now.</summary>
    private void CutPendingFlows()
    {
        if (memory.CutFrom.Count == 0 || options.Flows is not { } flows) return;
        var changes = memory.CutFrom
            .Select(kv => (kv.Value, memory.Kernel.Owners.TryGetValue(kv.Key, out var now) ? now : Fragment.Empty(kv.Key)))
            .ToList();
        memory.CutFrom.Clear();
        try
        {
            var cut = progress.Busy(() => flows.Cut(changes, memory.Kernel.References.Keys));
            if (cut > 0) log.Info("deleted {0} conntrack entries the new rules no longer allow", cut);
        }
        catch (Exception e)
        {
            log.Error(e, "conntrack: could not delete the flows the new rules no longer allow");
        }
    }

    /// <summary>Whether one of these fragments holds an address whose flows still wait to be cut
    /// for another owner. A reused address's new owner never inherits a flow of the old one: the
    /// old owner's are cut before the new owner's rules are in the kernel, or right after the
    /// transaction that put them there, before the writer does anything else.</summary>
    private bool TakesPendingAddress(IReadOnlyList<Fragment> wished)
    {
        if (memory.CutFrom.Count == 0) return false;
        var pending = memory.CutFrom
            .SelectMany(kv => FlowCutter.AddressesOf(kv.Value).Select(a => (Address: a, Owner: kv.Key)))
            .ToLookup(x => x.Address, x => x.Owner);
        return wished.Any(f => FlowCutter.AddressesOf(f).Any(a => pending[a].Any(owner => owner != f.Owner)));
    }

    /// <summary>Lenient mode: every guard's lease restarts (delete + add, one transaction); a guard
    /// that lapsed meanwhile (the daemon hung) is simply added again.</summary>
    private void RenewLeases()
    {
        var guards = memory.Kernel.BridgeReferences.Keys.Where(e => e.TimeoutSeconds is not null).ToList();
        if (guards.Count == 0) return;
        if (Transaction("guards", BridgeLayout.Changes(table, guards, guards), guards.Count * 2).Ok) return;
        var added = Transaction("guards", BridgeLayout.Changes(table, [], guards), guards.Count);
        if (!added.Ok) log.Warning("could not renew the guards' leases: {0}", added.Error.Trim());
    }

    private void ScheduleResync(string reason)
    {
        WhaleWallMetrics.WriterResyncs.WithLabels(reason).Inc();
        if (memory.ResyncScheduled) return;
        memory.ResyncScheduled = true;
        Timers.StartSingleTimer("resync", Resync.Instance, ResyncDelay());
    }

    /// <summary>A running table is rebuilt at once after its first failure (it may be half
    /// changed), then after 2 s, 4 s, ... 30 s; a start-up table is not in the kernel yet and
    /// waits 1 s, 2 s, ... from its first failure.</summary>
    private TimeSpan ResyncDelay() =>
        memory.ResyncFailures == 0 || (memory.TableBuilt && memory.ResyncFailures == 1) ? TimeSpan.Zero : Backoff(memory.ResyncFailures);

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

    private static TimeSpan Backoff(int attempts) =>
        TimeSpan.FromSeconds(Math.Min(MaxBackoff.TotalSeconds, Math.Pow(2, Math.Min(attempts, 10) - 1)));

    /// <summary>The set-elements gauge: recounted after a whole table, adjusted after changes.</summary>
    private void CountElements(KernelState.Plan plan)
    {
        foreach (var e in plan.Deletes) setSizes[Gauged(e)] = setSizes.GetValueOrDefault(Gauged(e)) - 1;
        foreach (var e in plan.Adds) setSizes[Gauged(e)] = setSizes.GetValueOrDefault(Gauged(e)) + 1;
        PublishCounts();
    }

    /// <summary>After a whole table (which drops whatever waited for collection): every element
    /// it was built with.</summary>
    private void CountElements(ImmutableArray<Element> all)
    {
        setSizes.Clear();
        foreach (var s in NftSets.All) setSizes[s.Name] = 0;
        foreach (var e in all) setSizes[Gauged(e)] = setSizes.GetValueOrDefault(Gauged(e)) + 1;
        PublishCounts();
    }

    private void PublishCounts()
    {
        foreach (var (set, n) in setSizes) WhaleWallMetrics.SetElements.WithLabels(set).Set(n);
    }

    /// <summary>The gauge's set label: the physical set, a shard's counted with its logical set
    /// (an element outside an exact twin is in its logical set or one of its shards).</summary>
    private static string Gauged(Element e) => NftPlacement.IsTwin(e.PhysicalSet) ? e.PhysicalSet : e.Set;

    private sealed class Flush
    {
        public static readonly Flush Instance = new();
    }

    private sealed class CutFlowsNow
    {
        public static readonly CutFlowsNow Instance = new();
    }

    private sealed class StartupTimeout
    {
        public static readonly StartupTimeout Instance = new();
    }

    private sealed class Resync
    {
        public static readonly Resync Instance = new();
    }

    private sealed record Retry(string Owner, long Version);

    private sealed class RenewGuards
    {
        public static readonly RenewGuards Instance = new();
    }

    private sealed class SweepExpired
    {
        public static readonly SweepExpired Instance = new();
    }

    private sealed class CollectGarbage
    {
        public static readonly CollectGarbage Instance = new();
    }
}

/// <param name="Bridge">bind containers to their bridge ports (the bridge-family table of the
/// same name, docs/binding.md)</param>
/// <param name="GuardLease">lenient mode: guards lapse after this unless renewed; null: strict</param>
/// <param name="Flows">deletes the conntrack entries a change no longer allows (null: off)</param>
/// <param name="RenewByAdd">DNS renewals are an add alone (<see cref="RenewalProbe"/>)</param>
/// <param name="CollectIdle">how long the writer must have been idle before it deletes what
/// containers that went left in interval sets (<see cref="KernelState.Garbage"/>)</param>
/// <param name="CollectBatch">most elements one collection transaction deletes</param>
/// <param name="CollectPause">the pause between two collection transactions</param>
public sealed record WriterOptions(bool Bridge = false, TimeSpan? GuardLease = null, FlowCutter? Flows = null, bool RenewByAdd = false)
{
    public static readonly WriterOptions Default = new();

    public TimeSpan CollectIdle { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary>Deleting from a concatenated interval set costs the kernel time that grows with the
    /// set and does not amortise over a batch (10,000 present: 1 in 3 ms right after a bulk load,
    /// but 2 in ~190 ms once the set has seen add/remove cycles, all of it kernel time), and a
    /// change that arrives meanwhile waits for the transaction: one at a time.</summary>
    public int CollectBatch { get; init; } = 1;
    public TimeSpan CollectPause { get; init; } = TimeSpan.FromMilliseconds(10);
    /// <summary>The longest the changes that keep arriving may put collection off: then one batch
    /// goes between two of them.</summary>
    public TimeSpan CollectAtLatest { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>How long the flows of changed containers may wait to be cut while further changes
    /// keep arriving (those go first; their cuts join the same read of the conntrack table).</summary>
    public TimeSpan CutPatience { get; init; } = TimeSpan.FromMilliseconds(50);
    /// <summary>How long the flows of containers that went may wait to be cut (an owner that takes
    /// one of their addresses has them cut first).</summary>
    public TimeSpan RemovalCutPatience { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>What the writer knows, kept outside the actor instance so a restart (after an
/// exception that escaped <c>Safely</c>) resumes where it was instead of waiting for a start-up
/// that will never come. Only the writer's thread touches it.</summary>
public sealed class WriterMemory
{
    /// <summary>What the kernel holds, as far as the writer knows.</summary>
    internal KernelState Kernel = KernelState.Empty;
    /// <summary>Since when collection has waited for the writer to be idle (Stopwatch timestamp).</summary>
    internal long CollectWaitSince;

    /// <summary>Every owner's latest wish (a removal until it has landed).</summary>
    internal readonly Dictionary<string, Wanted> Desired = new();

    /// <summary>Owners whose wish is not in the kernel yet.</summary>
    internal readonly HashSet<string> Dirty = new();

    /// <summary>Owners whose wish the kernel refused: drop-all in the kernel, retried with backoff.</summary>
    internal readonly Dictionary<string, Refusal> Refused = new();

    internal bool TableBuilt;
    internal ImmutableHashSet<string>? Expected;
    internal HashSet<string> Missing = [];
    internal bool ResyncScheduled;

    /// <summary>Owners whose port elements wait for another owner to let go of their address.</summary>
    internal readonly HashSet<string> Withheld = new();
    internal int ResyncFailures;

    /// <summary>Owners whose conntrack entries wait to be checked, each with the fragment the kernel
    /// held before its first change since the last cut (<see cref="NftWriterActor"/>'s <c>CutPendingFlows</c>).</summary>
    internal readonly Dictionary<string, Fragment> CutFrom = new();

    /// <summary>When the oldest of them changed (Stopwatch timestamp).</summary>
    internal long CutPendingSince;
}

/// <param name="Answered">The owner was told how this wish went (applied, or refused).</param>
/// <param name="ReceivedAt">when the writer received the Program (Stopwatch timestamp; 0 once answered)</param>
internal sealed record Wanted(Fragment Fragment, long Version, IActorRef ReplyTo, bool Answered = false, long ReceivedAt = 0);

internal sealed record Refusal(long Version, string Error, int Attempts);

public sealed class NftWriter { }

public static class NftWriterActorExtensions
{
    public static AkkaConfigurationBuilder AddNftWriterActor(this AkkaConfigurationBuilder builder, INftables nft, string table, bool logDrops = false,
        WriterOptions? options = null) =>
        builder
            .AddHocon($"{NftWriterActor.DispatcherId} {{ type = PinnedDispatcher }}", HoconAddMode.Prepend)
            .WithActors((system, registry) =>
            {
                var progress = new WriterProgress();
                registry.Register<NftWriter>(system.ActorOf(NftWriterActor.Props(nft, table, logDrops, progress, options), "nft-writer"));
                system.ActorOf(WriterWatchdogActor.Props(progress), "nft-writer-watchdog");
            });
}
