using System.Net;
using System.Runtime.CompilerServices;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using Akka.Persistence;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Metrics;
using WhaleWall.Firewall;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Flows;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Flows;

/// <summary>
/// Flow learning (README "Audit mode and learning"): the new flows of containers in audit mode
/// or with <c>whalewall.learn=true</c>, from conntrack's new-flow events, aggregated per owner
/// (<see cref="FlowLog"/>) and journalled (persistence id <c>flows-{node}</c>), so
/// <c>whalewall suggest</c> can turn them into labels, across restarts. Would-be drops of
/// audited containers (the ct mark their audit rule set) are logged, at most
/// <see cref="LogBurst"/> lines per <see cref="LogWindow"/>. The kernel is listened to only
/// while some container learns.
/// </summary>
public sealed class FlowRecorderActor : ReceivePersistentActor, IWithTimers, IFlowDirectory
{
    public const int SnapshotEvery = 200;
    public const int LogBurst = 20;
    public static readonly TimeSpan LogWindow = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan FlushEvery = TimeSpan.FromSeconds(1);
    /// <summary>How long past its TTL a DNS answer still names its address (pooled connections
    /// are opened well after the lookup).</summary>
    public static readonly TimeSpan NameGrace = TimeSpan.FromMinutes(10);
    public const int NamesPerContainer = 1024;

    private readonly ILoggingAdapter log = Context.GetLogger();
    private readonly Func<INewFlows>? open;
    private readonly DaemonView? view;
    private readonly FlowLimits limits;
    private readonly int proxyPort;
    private FlowLog flows = FlowLog.Empty;
    private readonly HashSet<string> dirty = new(StringComparer.Ordinal);
    private readonly Dictionary<IPAddress, ContainerFacts> byAddress = new();
    private readonly Dictionary<string, ContainerFacts> byId = new(StringComparer.Ordinal);
    private readonly HashSet<string> learners = new(StringComparer.Ordinal);
    private readonly HashSet<string> audited = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Dictionary<IPAddress, (string Name, DateTimeOffset Until)>> names = new(StringComparer.Ordinal);
    private CancellationTokenSource? reading;
    /// <summary>Batches told but not yet handled: the reader drops (and counts as lost) what
    /// comes while <see cref="MaxPendingBatches"/> wait, so a flood of new flows cannot grow
    /// the mailbox without bound.</summary>
    private readonly StrongBox<int> pending = new(0);
    public const int MaxPendingBatches = 4;
    private int sinceSnapshot;
    private readonly LogBudget budget = new(LogBurst, LogWindow);
    private bool unavailableSaid;

    public override string PersistenceId { get; }
    public ITimerScheduler Timers { get; set; } = null!;

    public static string PersistenceIdFor(string node) => $"flows-{node}";

    /// <param name="open">opens the kernel's new-flow events; null: read-only (the CLI's view of the journal)</param>
    /// <param name="view">the daemon's containers as they are now: a restarted recorder starts from them</param>
    public FlowRecorderActor(string node, Func<INewFlows>? open, FlowLimits? limits = null, int proxyPort = 15353, DaemonView? view = null)
    {
        this.view = view;
        PersistenceId = PersistenceIdFor(node);
        this.open = open;
        this.limits = limits ?? FlowLimits.Default;
        this.proxyPort = proxyPort;

        Recover<SnapshotOffer>(o => { if (o.Snapshot is FlowsSnapshot s) flows = s.Log; });
        Recover<FlowsRecorded>(r => flows = r.Owners.Aggregate(flows, (l, o) => l.Put(o)));
        Recover<FlowsCleared>(_ => flows = FlowLog.Empty);
        Recover<RecoveryCompleted>(_ =>
        {
            if (open is not null) log.Info("flows {0}: {1} owners recovered", PersistenceId, flows.Owners.Count);
        });

        Command<FlowCommands.Get>(_ => Sender.Tell(new FlowEvents.Log(flows, LastSequenceNr)));
        Command<FlowCommands.Clear>(_ =>
        {
            var count = flows.Owners.Count;
            var replyTo = Sender;
            Persist(new FlowsCleared(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), _ =>
            {
                flows = FlowLog.Empty;
                dirty.Clear();
                replyTo.Tell(new FlowEvents.Cleared(count));
            });
        });
        Command<ContainerNotices.StateChanged>(OnState);
        Command<FlowCommands.Resolved>(OnResolved);
        Command<FlowCommands.Seen>(OnSeen);
        Command<FlowCommands.Flush>(_ => Journal());
        Command<SaveSnapshotSuccess>(s => DeleteMessages(s.Metadata.SequenceNr));
        Command<SaveSnapshotFailure>(f => log.Warning("flows: snapshot failed ({0})", f.Cause.Message));
        Command<DeleteMessagesSuccess>(_ => { });
        Command<DeleteMessagesFailure>(f => log.Warning("flows: deleting journalled flows failed ({0})", f.Cause.Message));
    }

    public static Props Props(string node, Func<INewFlows>? open, FlowLimits? limits = null, int proxyPort = 15353, DaemonView? view = null) =>
        Akka.Actor.Props.Create(() => new FlowRecorderActor(node, open, limits, proxyPort, view));

    /// <summary>Restarted with backoff when the journal fails (its flows are then re-read).</summary>
    public static Props Supervised(string node, Func<INewFlows> open, int proxyPort, DaemonView view) =>
        Akka.Pattern.BackoffSupervisor.Props(Akka.Pattern.Backoff.OnStop(Props(node, open, null, proxyPort, view), "recorder",
            TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), 0.2, -1));

    protected override void PreStart()
    {
        if (open is null) return;
        Context.System.EventStream.Subscribe(Self, typeof(ContainerNotices.StateChanged));
        foreach (var c in view?.Current.Containers.Values ?? [])
            OnState(new ContainerNotices.StateChanged(c.Id, c.Facts, c.State, c.ReasonsOrEmpty) { Mode = c.Mode, Learn = c.Learn });
        Timers.StartPeriodicTimer("flush", FlowCommands.Flush.Instance, FlushEvery);
    }

    protected override void PostStop()
    {
        Context.System.EventStream.Unsubscribe(Self);
        StopReading();
        base.PostStop();
    }

    // ---- IFlowDirectory
    public ContainerFacts? ContainerAt(IPAddress address) => byAddress.GetValueOrDefault(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);
    public bool Learns(string containerId) => learners.Contains(containerId);
    public string? NameOf(string containerId, IPAddress address) =>
        names.TryGetValue(containerId, out var known) && known.TryGetValue(address, out var n) && n.Until > DateTimeOffset.UtcNow ? n.Name : null;

    private void OnState(ContainerNotices.StateChanged m)
    {
        if (byId.Remove(m.Id, out var old))
            foreach (var a in old.Addresses)
                if (byAddress.TryGetValue(a, out var f) && f.Id == m.Id) byAddress.Remove(a);
        learners.Remove(m.Id);
        audited.Remove(m.Id);
        if (m.State == ContainerState.Gone || m.Facts is not { } facts)
        {
            names.Remove(m.Id);
        }
        else
        {
            var visible = Visibility.Filterable(facts);
            byId[m.Id] = visible;
            foreach (var a in visible.Addresses) byAddress[a] = visible;
            if (m.Learn && m.State != ContainerState.Unmanaged) learners.Add(m.Id);
            if (m.Mode == PolicyMode.Audit && m.State != ContainerState.Unmanaged) audited.Add(m.Id);
        }
        if (learners.Count > 0) StartReading(); else StopReading();
    }

    private void OnResolved(FlowCommands.Resolved r)
    {
        if (!learners.Contains(r.ContainerId)) return;
        if (!names.TryGetValue(r.ContainerId, out var known)) names[r.ContainerId] = known = [];
        var now = DateTimeOffset.UtcNow;
        foreach (var (address, ttl) in r.Addresses)
        {
            if (known.Count >= NamesPerContainer && !known.ContainsKey(address))
            {
                // full: what expires first makes room
                var first = known.MinBy(k => k.Value.Until);
                known.Remove(first.Key);
            }
            known[address] = (r.Name, now + ttl + NameGrace);
        }
    }

    private void OnSeen(FlowCommands.Seen seen)
    {
        Interlocked.Decrement(ref pending.Value);
        if (seen.Lost) WhaleWallMetrics.FlowEvents.WithLabels("lost").Inc();
        foreach (var flow in seen.Flows)
        {
            if (flow.AuditDrop) LogAuditDrop(flow);
            if (FlowAttribution.Egress(flow, this, seen.AtMs, proxyPort) is not { } observed) continue;
            (flows, var outcome, _) = flows.Record(observed, limits);
            dirty.Add(observed.Owner);
            WhaleWallMetrics.FlowEvents.WithLabels(outcome == FlowLog.Outcome.Overflow ? "overflow" : "recorded").Inc();
            if (observed.AuditDrop) WhaleWallMetrics.FlowEvents.WithLabels("audit_drop").Inc();
        }
    }

    private void LogAuditDrop(NewFlow flow)
    {
        var f = flow.Flow;
        var from = ContainerAt(f.Original.Source);
        var to = ContainerAt(f.Reply.Source);
        string? who = from is not null && audited.Contains(from.Id) ? $"{from.Name.TrimStart('/')} egress"
            : to is not null && audited.Contains(to.Id) ? $"{to.Name.TrimStart('/')} ingress" : null;
        if (who is null) return;
        var proto = f.Protocol switch { ConntrackFlow.Tcp => "tcp", ConntrackFlow.Udp => "udp", ConntrackFlow.Icmp => "icmp", ConntrackFlow.Icmpv6 => "icmpv6", var p => $"proto {p}" };
        var port = f.Protocol is ConntrackFlow.Icmp or ConntrackFlow.Icmpv6 ? $" type {f.Original.DestinationPort >> 8}" : $" port {f.Reply.SourcePort}";
        Log(SafeText.Escape($"audit: {who}: would drop {proto} {f.Original.Source} -> {f.Reply.Source}{port} (passed: audit mode)"));
    }

    private void Log(string line)
    {
        var admitted = budget.Admit(DateTimeOffset.UtcNow, out var heldBack);
        if (heldBack > 0) log.Info("audit: {0} more would-be drops in {1:F0} s not logged (whalewall_container_packets_total{{verdict=\"audit_drop\"}} counts them all)", heldBack, LogWindow.TotalSeconds);
        if (admitted) log.Info(line);
    }

    private void Journal()
    {
        if (dirty.Count == 0) return;
        var changed = new FlowsRecorded([.. dirty.Where(flows.Owners.ContainsKey).Select(o => flows.Owners[o])]);
        dirty.Clear();
        if (changed.Owners.IsEmpty) return;
        Persist(changed, _ =>
        {
            if (++sinceSnapshot < SnapshotEvery) return;
            sinceSnapshot = 0;
            SaveSnapshot(new FlowsSnapshot(flows));
        });
    }

    private void StartReading()
    {
        if (reading is not null || open is null) return;
        INewFlows source;
        try { source = open(); }
        catch (Exception e)
        {
            if (!unavailableSaid) log.Error("flow learning unavailable: conntrack events cannot be read ({0}); audit mode still passes and counts would-be drops", e.Message);
            unavailableSaid = true;
            return;
        }
        log.Info("flow learning: listening to conntrack's new flows ({0} learning containers)", learners.Count);
        var cts = reading = new CancellationTokenSource();
        var self = Self;
        var waiting = pending;
        var thread = new Thread(() =>
        {
            using (source)
            {
                while (!cts.IsCancellationRequested)
                {
                    var batch = new List<NewFlow>();
                    bool complete;
                    try { complete = source.Read(TimeSpan.FromMilliseconds(250), batch); }
                    catch (Exception) { return; }
                    if (batch.Count == 0 && complete) continue;
                    if (Volatile.Read(ref waiting.Value) >= MaxPendingBatches)
                    {
                        // the recorder is behind: these are lost, and said so
                        WhaleWallMetrics.FlowEvents.WithLabels("lost").Inc(batch.Count);
                        continue;
                    }
                    Interlocked.Increment(ref waiting.Value);
                    self.Tell(new FlowCommands.Seen(batch, !complete, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
                }
            }
        }) { IsBackground = true, Name = "whalewall conntrack events" };
        thread.Start();
    }

    private void StopReading()
    {
        if (reading is null) return;
        reading.Cancel();
        reading = null;
        log.Info("flow learning: no container learns; stopped listening to conntrack");
    }
}

public static class FlowRecorderExtensions
{
    public static AkkaConfigurationBuilder AddFlowRecorderActor(this AkkaConfigurationBuilder builder, string node, Func<INewFlows> open,
        int proxyPort, DaemonView view) =>
        builder.WithActors((system, registry) =>
            registry.Register<FlowRecorder>(system.ActorOf(FlowRecorderActor.Supervised(node, open, proxyPort, view), "flows")));
}
