using System.Diagnostics;
using Akka.Actor;
using WhaleWall.Actors.Health;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Actors.Nft;

/// <summary>What the writer is doing, readable from other threads: the writer's own thread may
/// be blocked inside libnftables, so its health is judged from outside (by
/// <see cref="WriterWatchdogActor"/>), never by the writer itself.</summary>
public sealed class WriterProgress
{
    private long busySince;          // Stopwatch timestamp of the running kernel call, 0 when idle
    private int depth;               // kernel calls under way (the writer's thread only)
    private long failingSince;       // when the table could first not be brought in step, 0 when fine
    private volatile string? failure;
    private volatile int retrying;

    /// <summary>A kernel call that runs longer than this means the writer is stuck.</summary>
    public static readonly TimeSpan StuckAfter = TimeSpan.FromSeconds(10);

    /// <summary>Runs a blocking kernel call of the writer's thread (libnftables: a transaction, a
    /// listing, a dry run; a conntrack cut), the writer busy meanwhile: the one way the writer
    /// calls the kernel (<see cref="WatchedNftables"/>), so none escapes the watchdog.</summary>
    public T Busy<T>(Func<T> call)
    {
        if (depth++ == 0) Interlocked.Exchange(ref busySince, Stopwatch.GetTimestamp());
        try { return call(); }
        finally
        {
            if (--depth == 0) Interlocked.Exchange(ref busySince, 0);
        }
    }

    /// <summary>The table cannot be brought in step with what the containers need (a start-up
    /// table or a resync the kernel refuses); null: it is in step again.</summary>
    public void Failing(string? reason)
    {
        if (reason is null) Interlocked.Exchange(ref failingSince, 0);
        else Interlocked.CompareExchange(ref failingSince, Stopwatch.GetTimestamp(), 0);
        failure = reason;
    }

    /// <summary>Owners whose rules the kernel refused and that the writer retries (drop-all meanwhile).</summary>
    public int Retrying { get => retrying; set => retrying = value; }

    /// <summary>Why the writer cannot be trusted right now, or null.</summary>
    public string? Problem()
    {
        var busy = Interlocked.Read(ref busySince);
        if (busy != 0 && Stopwatch.GetElapsedTime(busy) > StuckAfter)
            return $"a kernel call (libnftables or conntrack) has been running for {Stopwatch.GetElapsedTime(busy).TotalSeconds:0} s";
        if (failure is { } f)
            return $"the table is not in step with the containers' rules since {Stopwatch.GetElapsedTime(Interlocked.Read(ref failingSince)).TotalSeconds:0} s ago ({f}); retrying";
        return null;
    }
}

/// <summary>The writer's libnftables context, every call marked busy in its <see cref="WriterProgress"/>.</summary>
internal sealed class WatchedNftables(INftables nft, WriterProgress progress) : INftables
{
    public NftResult Run(string json) => progress.Busy(() => nft.Run(json));

    public NftResult Check(string json) => progress.Busy(() => nft.Check(json));
}

/// <summary>Looks at the writer's <see cref="WriterProgress"/> every second and publishes its
/// health (<see cref="HealthNotices.ComponentHealth"/>, component "writer") when it changes.
/// Runs on the default dispatcher, so a writer blocked in libnftables is still noticed.</summary>
public sealed class WriterWatchdogActor : ReceiveActor, IWithTimers
{
    private string? published = "unknown";

    public ITimerScheduler Timers { get; set; } = null!;

    public WriterWatchdogActor(WriterProgress progress)
    {
        Receive<Tick>(_ =>
        {
            var problem = progress.Problem();
            Metrics.WhaleWallMetrics.WriterRetrying.Set(progress.Retrying);
            if (problem == published) return;
            published = problem;
            Context.System.EventStream.Publish(new HealthNotices.ComponentHealth(HealthNotices.Components.Writer, problem));
        });
    }

    protected override void PreStart() => Timers.StartPeriodicTimer(Tick.Instance, Tick.Instance, TimeSpan.Zero, TimeSpan.FromSeconds(1));

    public static Props Props(WriterProgress progress) => Akka.Actor.Props.Create(() => new WriterWatchdogActor(progress));

    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }
}
