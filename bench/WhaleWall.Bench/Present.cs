using WriterProgram = WhaleWall.Actors.Nft.NftWriterCommands.Program;
using System.Diagnostics;
using Akka.Actor;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Nft;
using static WhaleWall.Actors.Nft.NftWriterCommands;
using static WhaleWall.Actors.Nft.NftWriterEvents;

namespace WhaleWall.Bench;

/// <summary>The daemon's actors in-process (writer behind a <see cref="WriterProbe"/>, peer
/// directory, DockerEventsActor with <see cref="SyntheticDocker"/>) holding N containers'
/// policies, injected as container facts. Measures the memory they take, then Program ->
/// committed latency while ~20 containers churn.</summary>
public sealed class Present : IAsyncDisposable
{
    public ActorSystem System { get; }
    public IActorRef Probe { get; }
    public IActorRef Peers { get; }
    public WriterProbe.Log Log { get; }
    public int Count { get; }

    private Present(ActorSystem system, IActorRef probe, IActorRef peers, WriterProbe.Log log, int count)
    {
        System = system; Probe = probe; Peers = peers; Log = log; Count = count;
    }

    public static async Task<Present> StartAsync(Ctx ctx)
    {
        var n = ctx.Short ? 100 : 1000;
        ctx.DropTable();
        var system = Ctx.NewActorSystem("wwbench-present");
        var log = new WriterProbe.Log();
        var writer = system.ActorOf(NftWriterActor.Props(ctx.Nft, ctx.Table), "nft-writer");
        var probe = system.ActorOf(WriterProbe.Props(writer, log), "writer-probe");
        var peers = system.ActorOf(Props.Create<PeerDirectoryActor>(), "peers");
        await Task.Delay(500);

        Settle();
        var heap0 = GC.GetTotalMemory(true);
        var rss0 = Ctx.RssBytes();

        var sw = Stopwatch.StartNew();
        var docker = new SyntheticDocker(n);
        system.ActorOf(DockerEventsActor.Props(docker, probe, peers), "docker-events-synthetic");
        while (log.EnforcedCount < n)
        {
            if (sw.Elapsed > TimeSpan.FromMinutes(2)) throw new TimeoutException($"only {log.EnforcedCount} of {n} enforced");
            await Task.Delay(20);
        }
        var startMs = sw.Elapsed.TotalMilliseconds;
        await Task.Delay(500);
        Settle();
        var heap1 = GC.GetTotalMemory(true);
        var rss1 = Ctx.RssBytes();

        var present = new Present(system, probe, peers, log, n);
        ctx.Log($"present: {n} synthetic containers through the actors in {startMs:0} ms; heap {Ctx.Mb(heap0)} -> {Ctx.Mb(heap1)}, RSS {Ctx.Mb(rss0)} -> {Ctx.Mb(rss1)}");
        ctx.Report.Add($"Memory: the daemon's actors in the bench process, {n:N0} containers' facts injected (DockerEventsActor + {n:N0} ContainerActors + peers + writer state)",
            $"managed heap +{Ctx.Mb(heap1 - heap0)} ({(heap1 - heap0) / n / 1024.0:0.0} KiB per container), process RSS +{Ctx.Mb(rss1 - rss0)} (idle actor system: heap {Ctx.Mb(heap0)}, RSS {Ctx.Mb(rss0)})",
            "");
        ctx.Report.Add($"Start-up of {n:N0} injected containers through all the actors (list, inspect, parse, compile, one transaction)",
            Stats.Ms(startMs), "");
        return present;
    }

    private static void Settle()
    {
        for (var i = 0; i < 3; i++)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }
    }

    /// <summary>~20 containers appear and go, concurrently, through the writer: each Program
    /// (add, then remove) timed from Tell to Applied.</summary>
    public async Task ChurnAsync(Ctx ctx)
    {
        var workers = ctx.Short ? 4 : 20;
        var cycles = ctx.Short ? 5 : 25;
        var adds = new List<double>();
        var removes = new List<double>();
        var mark = ctx.Nft.Count;
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            long version = 0;
            var rng = new Random(w);
            for (var c = 0; c < cycles; c++)
            {
                // a different synthetic container each cycle: new address, new elements
                var f = Synthetic.Compile(Synthetic.Facts(Count + w * cycles + c, "churn"));
                var t = Stopwatch.StartNew();
                var a = await Probe.Ask<object>(new WriterProgram(f, ++version), TimeSpan.FromSeconds(30));
                var addMs = t.Elapsed.TotalMilliseconds;
                if (a is not Applied) throw new InvalidOperationException($"churn: {a}");
                await Task.Delay(rng.Next(0, 20));
                t.Restart();
                await Probe.Ask<object>(new WriterProgram(Fragment.Empty(f.Owner), ++version), TimeSpan.FromSeconds(30));
                var delMs = t.Elapsed.TotalMilliseconds;
                lock (adds) { adds.Add(addMs); removes.Add(delMs); }
                await Task.Delay(rng.Next(0, 20));
            }
        })));
        var transactions = ctx.Nft.Since(mark);
        var (withDeletes, addsOnly) = ctx.Nft.SinceSplit(mark);
        var all = adds.Concat(removes).ToList();
        ctx.Log($"churn: {adds.Count} cycles in {sw.Elapsed.TotalSeconds:0.0} s; add {Stats.P50P99(adds)}; remove {Stats.P50P99(removes)}; {transactions.Count} transactions {Stats.P50P99(transactions)}");
        ctx.Report.Add($"Program -> committed (writer only, no Docker), {Count:N0} present, {workers} containers churning: a container's rules added",
            $"{Stats.P50P99(adds)}; all {all.Count} Programs in {transactions.Count} transactions",
            "p99 < 20 ms", Stats.Percentile(adds, 99) < 20);
        ctx.Report.Add("  same churn: a container's rules removed", Stats.P50P99(removes), "p99 < 20 ms", Stats.Percentile(removes, 99) < 20);
        ctx.Report.Add("  same churn: libnftables transactions that delete elements / that only add",
            $"{Stats.P50P99(withDeletes)} / {Stats.P50P99(addsOnly)}", "");
    }

    public async ValueTask DisposeAsync() => await System.Terminate();
}
