using WriterProgram = WhaleWall.Actors.Nft.NftWriterCommands.Program;
using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Nft;
using static WhaleWall.Actors.Nft.NftWriterCommands;
using static WhaleWall.Actors.Nft.NftWriterEvents;

namespace WhaleWall.Bench;

/// <summary>N containers programmed from nothing: through the writer's start-up path
/// (ExpectOwners + one Program per container), against the floor (one libnftables transaction
/// of the same ruleset) and against one transaction per container (what the old tools do).
/// Then, with N present, one more container through the writer.</summary>
public static class Bulk
{
    public static async Task RunAsync(Ctx ctx, ActorSystem system)
    {
        var n = ctx.Short ? 200 : 10_000;
        var rounds = ctx.Short ? 1 : 3;

        var sw = Stopwatch.StartNew();
        var fragments = Synthetic.Fragments(n);
        var compileMs = sw.Elapsed.TotalMilliseconds;
        var elements = fragments.SelectMany(f => f.Elements).ToList();
        sw.Restart();
        var floorJson = NftJson.FullTable(ctx.Table, elements);
        var renderMs = sw.Elapsed.TotalMilliseconds;
        ctx.Log($"bulk: {n:N0} containers, {elements.Count:N0} elements; compile {compileMs:0} ms, render {renderMs:0} ms, JSON {floorJson.Length / 1024} KiB");

        // one transaction per container (old tools): once, it is the slow one
        ctx.DropTable();
        ctx.Nft.Must(NftJson.FullTable(ctx.Table, []));
        sw.Restart();
        foreach (var f in fragments) ctx.Nft.Must(NftJson.Changes(ctx.Table, [], f.Elements));
        var perContainerMs = sw.Elapsed.TotalMilliseconds;
        ctx.Log($"bulk: one transaction per container: {perContainerMs:0} ms");

        var floor = new List<double>();
        var writer = new List<double>();
        var writerKernel = new List<double>();
        IActorRef? lastWriter = null;
        for (var r = 0; r < rounds; r++)
        {
            ctx.DropTable();
            sw.Restart();
            ctx.Nft.Must(floorJson);
            floor.Add(sw.Elapsed.TotalMilliseconds);

            ctx.DropTable();
            if (lastWriter is not null) await lastWriter.GracefulStop(TimeSpan.FromSeconds(10));
            var mark = ctx.Nft.Count;
            var (ms, w) = await ThroughWriterAsync(ctx, system, fragments, $"bulk-{r}");
            lastWriter = w;
            writer.Add(ms);
            writerKernel.Add(ctx.Nft.Since(mark).Sum());
            ctx.Log($"bulk round {r + 1}: floor {floor[^1]:0} ms, writer {writer[^1]:0} ms (of which libnftables {writerKernel[^1]:0} ms)");
        }

        var floorMs = Stats.Median(floor);
        var writerMs = Stats.Median(writer);
        ctx.Report.Add($"Bulk: {n:N0} containers ({elements.Count:N0} elements) from nothing, floor = one libnftables transaction",
            $"{Stats.Ms(floorMs)} (median of {rounds})", "");
        ctx.Report.Add($"Bulk: the same through the writer (ExpectOwners + {n:N0} Programs)",
            $"{Stats.Ms(writerMs)} = **{writerMs / floorMs:0.00}x the floor** (libnftables {Stats.Ms(Stats.Median(writerKernel))} of it)",
            "<= 1.5x floor", writerMs <= 1.5 * floorMs);
        ctx.Report.Add($"Bulk: one transaction per container ({n:N0} transactions)",
            $"{Stats.Ms(perContainerMs)} = {perContainerMs / floorMs:0.0}x the floor, {perContainerMs / writerMs:0.0}x the writer", "");
        ctx.Report.Add($"Bulk: label parsing + compiling {n:N0} containers (pure code, not in the figures above)",
            $"{Stats.Ms(compileMs)} ({compileMs * 1000 / n:0} us per container)", "");

        // Profile of the writer's start-up path outside the kernel: the same pure steps it takes
        // (plan the kernel state from the fragments, render the whole-table JSON), timed alone.
        var planMs = new List<double>();
        var fullRenderMs = new List<double>();
        for (var r = 0; r < rounds; r++)
        {
            sw.Restart();
            var plan = WhaleWall.Actors.Nft.KernelState.Empty.Replace(fragments);
            planMs.Add(sw.Elapsed.TotalMilliseconds);
            sw.Restart();
            _ = NftJson.FullTable(ctx.Table, plan.Adds, plan.ChainAdds);
            fullRenderMs.Add(sw.Elapsed.TotalMilliseconds);
        }
        var plannedMs = Stats.Median(planMs);
        var renderedMs = Stats.Median(fullRenderMs);
        var kernelMs = Stats.Median(writerKernel);
        ctx.Report.Add($"  writer profile: KernelState.Replace (plan) / NftJson.FullTable (render) / libnftables / rest ({n:N0} messages, actor)",
            $"{Stats.Ms(plannedMs)} / {Stats.Ms(renderedMs)} / {Stats.Ms(kernelMs)} / {Stats.Ms(writerMs - plannedMs - renderedMs - kernelMs)}", "");

        await OneMoreAsync(ctx, lastWriter!, n);
        await lastWriter!.GracefulStop(TimeSpan.FromSeconds(10));
        await ReplicasAsync(ctx, system, n, rounds);
    }

    /// <summary>N containers that are replicas of N/100 services (same labels per service, own
    /// addresses), from nothing through the writer: the target is today's floor for N distinct
    /// containers (0.5 s at 10,000, issue 14) divided by 3.</summary>
    private static async Task ReplicasAsync(Ctx ctx, ActorSystem system, int n, int rounds)
    {
        const int services = 100;
        var fragments = Enumerable.Range(0, n).Select(i => Synthetic.Compile(Synthetic.Replica(i, services))).ToList();
        var elements = fragments.SelectMany(f => f.Elements).Distinct().ToList();
        var floorJson = NftJson.FullTable(ctx.Table, elements);
        var floor = new List<double>();
        var writer = new List<double>();
        for (var r = 0; r < rounds; r++)
        {
            ctx.DropTable();
            var sw = Stopwatch.StartNew();
            ctx.Nft.Must(floorJson);
            floor.Add(sw.Elapsed.TotalMilliseconds);
            ctx.DropTable();
            var (ms, w) = await ThroughWriterAsync(ctx, system, fragments, $"replicas-{r}");
            writer.Add(ms);
            await w.GracefulStop(TimeSpan.FromSeconds(10));
        }
        var exact = elements.Count(e => e.PhysicalSet != e.Set);
        ctx.Report.Add($"Bulk: {n:N0} replicas of {services} services ({elements.Count:N0} elements, {exact:N0} of them exact, in hash sets) from nothing through the writer",
            $"{Stats.Ms(Stats.Median(writer))} (floor {Stats.Ms(Stats.Median(floor))}); 0.5 s / that = {500 / Stats.Median(writer):0.00} (3 or more wanted)",
            "< 167 ms (0.5 s / 3)", Stats.Median(writer) < 500.0 / 3);
    }

    /// <summary>The writer's start-up path; returns the time from ExpectOwners until every
    /// owner was answered.</summary>
    private static async Task<(double Ms, IActorRef Writer)> ThroughWriterAsync(Ctx ctx, ActorSystem system, List<Fragment> fragments, string name)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var collector = system.ActorOf(Props.Create(() => new Collector(fragments.Count, done)), name + "-collector");
        var writer = system.ActorOf(NftWriterActor.Props(ctx.Nft, ctx.Table), name + "-writer");
        var owners = fragments.Select(f => f.Owner).ToImmutableHashSet();
        var sw = Stopwatch.StartNew();
        writer.Tell(new ExpectOwners(owners), collector);
        foreach (var f in fragments) writer.Tell(new WriterProgram(f, 1), collector);
        await done.Task.WaitAsync(TimeSpan.FromMinutes(5));
        var ms = sw.Elapsed.TotalMilliseconds;
        system.Stop(collector);
        return (ms, writer);
    }

    /// <summary>One more container at N present: Program -> Applied through the writer, and
    /// the libnftables transaction inside it.</summary>
    private static async Task OneMoreAsync(Ctx ctx, IActorRef writer, int present)
    {
        var samples = ctx.Short ? 10 : 100;
        var add = new List<double>();
        var kernel = new List<double>();
        var del = new List<double>();
        var delKernel = new List<double>();
        for (var i = 0; i < samples; i++)
        {
            var f = Synthetic.Compile(Synthetic.Facts(present + i, "one"));
            var mark = ctx.Nft.Count;
            var sw = Stopwatch.StartNew();
            var a = await writer.Ask<object>(new WriterProgram(f, 1), TimeSpan.FromSeconds(30));
            add.Add(sw.Elapsed.TotalMilliseconds);
            kernel.Add(ctx.Nft.Since(mark).Sum());
            if (a is not Applied) throw new InvalidOperationException($"one more: {a}");
            mark = ctx.Nft.Count;
            sw.Restart();
            await writer.Ask<object>(new WriterProgram(Fragment.Empty(f.Owner), 2), TimeSpan.FromSeconds(30));
            del.Add(sw.Elapsed.TotalMilliseconds);
            delKernel.Add(ctx.Nft.Since(mark).Sum());
        }
        ctx.Log($"one more at {present:N0}: {Stats.P50P99(add)}; kernel {Stats.P50P99(kernel)}");
        ctx.Report.Add($"One container added / removed at {present:N0} present: libnftables transaction (kernel time)",
            $"add {Stats.P50P99(kernel)}; remove {Stats.P50P99(delKernel)}", "p99 < 5 ms both ways",
            Stats.Percentile(kernel, 99) < 5 && Stats.Percentile(delKernel, 99) < 5);
        ctx.Report.Add($"  the same through the writer: Program -> Applied",
            $"add {Stats.P50P99(add)}; remove {Stats.P50P99(del)}", "");

        // what the removals left in interval sets, collected once the writer is idle
        var collectMark = ctx.Nft.Count;
        var quiet = Stopwatch.StartNew();
        var seen = collectMark;
        while (quiet.Elapsed < TimeSpan.FromSeconds(2))
        {
            await Task.Delay(100);
            if (ctx.Nft.Count != seen) { seen = ctx.Nft.Count; quiet.Restart(); }
        }
        var collect = ctx.Nft.Since(collectMark);
        ctx.Report.Add($"  off the event path: idle-time collection of the {samples} removed containers' interval elements (batches of {WriterOptions.Default.CollectBatch})",
            collect.Count == 0 ? "none seen" : $"{collect.Count} transactions, {Stats.P50P99(collect)} each", "");
    }

    private sealed class Collector : ReceiveActor
    {
        public Collector(int expected, TaskCompletionSource done)
        {
            var answered = 0;
            Receive<Applied>(_ => { if (++answered == expected) done.TrySetResult(); });
            Receive<Rejected>(r => done.TrySetException(new InvalidOperationException($"rejected {r.Owner}: {r.Error}")));
        }
    }
}
