using System.Diagnostics;
using System.Text.RegularExpressions;
using Akka.Actor;
using WhaleWall.Actors.Docker;
using WhaleWall.TestSupport;

namespace WhaleWall.Bench;

/// <summary>Real containers on a real dockerd (the test harness: a private dockerd in its own
/// network namespace). (a) Docker event -> committed with the in-process actors, which already
/// hold the injected containers (<see cref="Present"/>); (b) the daemon as a real process:
/// start-up with N real containers and its RSS.</summary>
public static class RealContainers
{
    private const string Rules = "output:\n  - ips: [198.19.0.10]\n    proto: tcp\n    dst_ports: [80, 443]\n";

    public static async Task<DockerHarness> StartHarnessAsync(Ctx ctx)
    {
        var h = new DockerHarness { Log = ctx.Log };
        Cleanup.Register("docker harness " + h.RunId, () => StopHarnessAsync(h).GetAwaiter().GetResult());
        await h.InitializeAsync();
        return h;
    }

    private static readonly HashSet<DockerHarness> stopped = new();

    /// <summary>Once per harness, whoever comes first (the end of the run or a signal).</summary>
    public static async Task StopHarnessAsync(DockerHarness h)
    {
        lock (stopped) if (!stopped.Add(h)) return;
        await h.DisposeAsync();
    }

    public static async Task ChurnAsync(Ctx ctx, DockerHarness h, Present present)
    {
        var workers = ctx.Short ? 2 : 20;
        var cycles = ctx.Short ? 2 : 10;
        using var inner = DockerSource.Connect(h.DockerHost);
        var source = new RecordingDockerSource(inner);
        var events = present.System.ActorOf(DockerEventsActor.Props(source, present.Probe, present.Peers), "docker-events-real");
        await Task.Delay(1000); // listed, following events

        var ids = new List<string>();
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            for (var c = 0; c < cycles; c++)
            {
                var container = await h.RunContainerAsync($"churn-{w}-{c}", new ContainerOptions { Labels = E2eLabels.OptIn(Rules) });
                lock (ids) ids.Add(container.Id);
                await container.StopAsync();
                await container.RemoveAsync();
            }
        })));
        var churnSeconds = sw.Elapsed.TotalSeconds;
        await Task.Delay(2000);
        await events.GracefulStop(TimeSpan.FromSeconds(10));

        var seen = source.Events;
        var answers = present.Log.All;
        var enforce = new List<double>();
        var remove = new List<double>();
        var delivery = new List<double>();
        var toProgram = new List<double>();
        var inWriter = new List<double>();
        var dieDelivery = new List<double>();
        var dieToProgram = new List<double>();
        var dieInWriter = new List<double>();
        var onPath = new Dictionary<string, List<double>>();   // Docker API calls between connect received and Program sent
        var calls = source.Calls;
        var missing = 0;
        foreach (var id in ids)
        {
            var mine = seen.Where(s => s.Event.ContainerId == id).ToList();
            var connect = mine.FirstOrDefault(s => s.Event is { Type: "network", Action: "connect" });
            var die = mine.FirstOrDefault(s => s.Event is { Type: "container", Action: "die" });
            var owned = answers.Where(a => a.Owner == id && a.Ok).ToList();
            if (connect is null || die is null)
                ctx.Log($"unmatched {id[..12]}: events [{string.Join(", ", mine.Select(m => $"{m.Event.Type}/{m.Event.Action}@{m.Event.TimeNano}"))}] answers [{string.Join(", ", owned.Select(a => $"{(a.Empty ? "empty" : "elems")}@{a.AnsweredUnixNanos}"))}]");
            if (connect is null || die is null) { missing++; continue; }
            delivery.Add((connect.ReceivedUnixNanos - connect.Event.TimeNano) / 1e6);
            var on = owned.FirstOrDefault(a => !a.Empty && a.AnsweredUnixNanos >= connect.Event.TimeNano);
            var off = owned.FirstOrDefault(a => a.Empty && a.AnsweredUnixNanos >= die.Event.TimeNano);
            if (on is null || off is null) { missing++; continue; }
            enforce.Add((on.AnsweredUnixNanos - connect.Event.TimeNano) / 1e6);
            toProgram.Add((on.SentUnixNanos - connect.ReceivedUnixNanos) / 1e6);
            inWriter.Add((on.AnsweredUnixNanos - on.SentUnixNanos) / 1e6);
            remove.Add((off.AnsweredUnixNanos - die.Event.TimeNano) / 1e6);
            dieDelivery.Add((die.ReceivedUnixNanos - die.Event.TimeNano) / 1e6);
            dieToProgram.Add((off.SentUnixNanos - die.ReceivedUnixNanos) / 1e6);
            dieInWriter.Add((off.AnsweredUnixNanos - off.SentUnixNanos) / 1e6);
            foreach (var call in calls.Where(c => c.ContainerId == id && c.StartUnixNanos >= connect.ReceivedUnixNanos && c.EndUnixNanos <= on.SentUnixNanos))
                (onPath.TryGetValue(call.Method, out var l) ? l : onPath[call.Method] = []).Add((call.EndUnixNanos - call.StartUnixNanos) / 1e6);
        }
        var apiCalls = (onPath.Count == 0 ? "none" : string.Join("; ", onPath.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} {Stats.P50P99(kv.Value)}"))) +
            $"; {inner.NetworkInspects} network inspects for {calls.Count(c => c.Method == "endpoint")} endpoint lookups (the others answered by another container's)";
        ctx.Log($"real churn: {ids.Count} containers in {churnSeconds:0.0} s; connect->enforced {Stats.P50P99(enforce)}; die->removed {Stats.P50P99(remove)}; docker->bench delivery {Stats.P50P99(delivery)}; received->Program {Stats.P50P99(toProgram)}; Program->committed {Stats.P50P99(inWriter)}; Docker API calls on that path: {apiCalls}; die: delivery {Stats.P50P99(dieDelivery)}, received->Program {Stats.P50P99(dieToProgram)}, Program->committed {Stats.P50P99(dieInWriter)}; all Docker API calls: {string.Join("; ", calls.GroupBy(c => c.Method).OrderBy(g => g.Key).Select(g => $"{g.Key} {Stats.P50P99([.. g.Select(c => (c.EndUnixNanos - c.StartUnixNanos) / 1e6)])}"))}; {missing} without a pair");
        ctx.Report.Add($"Docker event -> committed, real containers: `network connect` -> elements in the kernel ({present.Count:N0} injected present, {workers} real containers churning, {ids.Count} cycles)",
            $"{Stats.P50P99(enforce)}{(missing > 0 ? $", {missing} unmatched" : "")}", "p99 < 20 ms", missing == 0 && Stats.Percentile(enforce, 99) < 20);
        ctx.Report.Add("Docker event -> committed, real containers: `die` -> elements removed",
            Stats.P50P99(remove), "");
        ctx.Report.Add("  die: Docker's event delivery / received -> Program sent / Program -> committed",
            $"{Stats.P50P99(dieDelivery)} / {Stats.P50P99(dieToProgram)} / {Stats.P50P99(dieInWriter)}", "");
        ctx.Report.Add("  connect: Docker's event delivery (event timestamp -> received by WhaleWall's adapter)",
            Stats.P50P99(delivery), "");
        ctx.Report.Add("  connect: received -> Program sent (ContainerActor, Docker API calls awaited on that path, compile)",
            Stats.P50P99(toProgram), "");
        ctx.Report.Add("  connect: Docker API calls awaited between the event and the Program (each: its duration)", apiCalls, "");
        ctx.Report.Add("  connect: Program -> committed (writer queue, coalescing, libnftables)",
            Stats.P50P99(inWriter), "");
    }

    /// <summary><c>--only real</c>: the real-container churn alone, with the injected containers present.</summary>
    public static async Task RunAloneAsync(Ctx ctx)
    {
        await using var present = await Present.StartAsync(ctx);
        var harness = await StartHarnessAsync(ctx);
        try { await ChurnAsync(ctx, harness, present); }
        finally
        {
            await StopHarnessAsync(harness);
            ctx.DropTable();
        }
    }

    /// <summary>The daemon as the README runs it: src/Host's own build output (same configuration
    /// as the bench). The copy next to the bench resolves its packages with the bench's graph,
    /// which lacks assemblies only the host needs (Microsoft.Extensions.ObjectPool for
    /// prometheus-net), so it dies at start-up. $WHALEWALL_E2E_DLL still wins.</summary>
    internal static string HostDll()
    {
        if (System.Environment.GetEnvironmentVariable("WHALEWALL_E2E_DLL") is { Length: > 0 } set) return set;
        var tfmDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        var config = tfmDir.Parent!.Name;
        for (var d = tfmDir; d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "WhaleWall.sln")))
            {
                var dll = Path.Combine(d.FullName, "src", "Host", "bin", config, tfmDir.Name, "whalewall.dll");
                if (File.Exists(dll)) return dll;
                throw new FileNotFoundException($"the daemon's build output is missing (build WhaleWall.sln -c {config})", dll);
            }
        throw new DirectoryNotFoundException($"no WhaleWall.sln above {tfmDir.FullName}");
    }

    /// <summary>The daemon process in the harness' namespace (as the end-to-end tests run it):
    /// idle RSS, then start-up with N real opted-in containers.</summary>
    public static async Task DaemonAsync(Ctx ctx, DockerHarness h)
    {
        var n = ctx.Short ? 5 : 100;
        var daemon = new WhaleWallDaemon(h.HostNsPath, h.DockerHost, ctx.Table,
            Path.Combine(h.Dir, "whalewall"), Path.Combine(h.Dir, "whalewall.log"), HostDll());
        Cleanup.Register("daemon", () => daemon.StopAsync().GetAwaiter().GetResult());
        daemon.ExtraEnvironment["WHALEWALL_LOG_LEVEL"] = "info";

        await daemon.StartAsync();
        await Task.Delay(TimeSpan.FromSeconds(ctx.Short ? 1 : 5));
        var idleRss = Ctx.RssBytesOf(daemon.Pid);
        await daemon.StopAsync();

        var sw = Stopwatch.StartNew();
        using var gate = new SemaphoreSlim(4);
        await Task.WhenAll(Enumerable.Range(0, n).Select(async i =>
        {
            await gate.WaitAsync();
            try { await h.RunContainerAsync($"startup-{i}", new ContainerOptions { Labels = E2eLabels.OptIn(Rules) }); }
            finally { gate.Release(); }
        }));
        ctx.Log($"daemon: {n} real containers running after {sw.Elapsed.TotalSeconds:0.0} s");

        await daemon.StartAsync(TimeSpan.FromSeconds(120));
        var startup = daemon.LastStartTime.TotalMilliseconds;
        var log = File.ReadAllText(daemon.LogFile);
        var sync = Regex.Matches(log, @"initial sync complete: table \S+ with (\d+) containers, (\d+) elements in (\d+) ms").LastOrDefault();
        await Task.Delay(TimeSpan.FromSeconds(ctx.Short ? 1 : 5));
        var busyRss = Ctx.RssBytesOf(daemon.Pid);
        await daemon.StopAsync();
        File.Copy(daemon.LogFile, Path.Combine(ctx.ArtifactsDir, "bench-daemon.log"), overwrite: true);

        var syncText = sync is null ? "no sync line" :
            $"{sync.Groups[1].Value} containers, {sync.Groups[2].Value} elements; the writer's start-up transaction {sync.Groups[3].Value} ms";
        ctx.Log($"daemon start-up with {n}: {startup:0} ms ({syncText}); RSS idle {Ctx.Mb(idleRss)}, with {n}: {Ctx.Mb(busyRss)}");
        ctx.Report.Add($"Daemon process start-up with {n} real containers: exec -> `initial sync complete`",
            $"{Stats.Ms(startup)} ({syncText})", "");
        ctx.Report.Add("Memory: daemon process RSS (VmRSS)",
            $"idle (0 containers) {Ctx.Mb(idleRss)}; with {n} real containers {Ctx.Mb(busyRss)}", "< 150 MB at 1,000", null);
    }
}
