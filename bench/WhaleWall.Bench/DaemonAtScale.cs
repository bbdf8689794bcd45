using System.Diagnostics;
using System.Text.RegularExpressions;
using WhaleWall.Firewall.Kernel;
using WhaleWall.Firewall.Nft;
using WhaleWall.TestSupport;

namespace WhaleWall.Bench;

/// <summary>The daemon process itself with 1,000 containers (issue 14): src/Host's build output
/// runs in a network namespace of its own (table <c>wwbench_&lt;pid&gt;_d</c>, state in a temp
/// dir, metrics and DNS proxy on that namespace's loopback), fed by <see cref="StandInDocker"/>
/// in a process of its own (<see cref="StandInDockerProcess"/>).
/// RSS comes from /proc of that process; event -> enforced is the stand-in's event timestamp ->
/// the kernel's element notification (<see cref="ElementMonitor"/>).</summary>
public static class DaemonAtScale
{
    public sealed record Setup(string Ns, string Dir, StandInDockerProcess Docker, WhaleWallDaemon Daemon, string Table);

    /// <summary>A namespace, a temp dir, the stand-in and a (stopped) daemon; all undone by <see cref="Cleanup"/>.</summary>
    public static async Task<Setup> PrepareAsync(Ctx ctx, string suffix)
    {
        var ns = $"{ctx.NsPrefix}-{suffix}";
        Shell.Run("ip", "netns", "add", ns);
        Cleanup.Register("namespace " + ns, () => Shell.Try("ip", "netns", "del", ns));
        Shell.Run("ip", "-n", ns, "link", "set", "lo", "up");
        Shell.Run("ip", "-n", ns, "route", "add", "blackhole", TestNet.Supernet4, "metric", TestNet.BlackholeMetric.ToString());
        var table = $"{ctx.Table}_{suffix}";
        Cleanup.Register($"table {table} in {ns}", () =>
        {
            using var nft = new LibNftables(Netns.Named(ns));
            nft.Run(NftJson.DeleteTable(table)); // absent already is fine
        });
        var dir = Directory.CreateTempSubdirectory("wwbench-" + suffix + "-").FullName;
        Cleanup.Register("temp dir " + dir, () => Directory.Delete(dir, recursive: true));
        var docker = StandInDockerProcess.Start(Path.Combine(dir, "docker.sock"), Path.Combine(ctx.ArtifactsDir, $"bench-standin-docker-{suffix}.log"));
        var daemon = new WhaleWallDaemon(Netns.Named(ns), docker.DockerHost, table,
            Path.Combine(dir, "whalewall"), Path.Combine(dir, "whalewall.log"), RealContainers.HostDll());
        Cleanup.Register("daemon " + suffix, () => daemon.StopAsync().GetAwaiter().GetResult());
        daemon.ExtraEnvironment["WHALEWALL_LOG_LEVEL"] = "info";
        daemon.ExtraEnvironment["WHALEWALL_METRICS_ADDR"] = "127.0.0.1:50000"; // the namespace's own loopback
        daemon.ExtraEnvironment["WHALEWALL_DNS_SERVERS"] = "198.19.0.53";      // never this host's resolvers
        // no bridge ports here (made-up containers): with binding on, each container's port lookup
        // would wait its full timeout on a thread of its own (BridgePortsActor), which is not what a
        // real dockerd's containers cost; binding's kernel cost is BindingCost's section
        daemon.ExtraEnvironment["WHALEWALL_BINDING"] = "off";
        daemon.ExtraEnvironment["WHALEWALL_DOCKER_CONFIG"] = Path.Combine(dir, "daemon.json"); // absent: no host daemon.json
        // WWBENCH_DAEMON_ENV="NAME=value,...": runtime settings for the daemon alone (not the bench or the stand-in)
        foreach (var pair in (Environment.GetEnvironmentVariable("WWBENCH_DAEMON_ENV") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries))
            daemon.ExtraEnvironment[pair[..pair.IndexOf('=')]] = pair[(pair.IndexOf('=') + 1)..];
        return new Setup(ns, dir, docker, daemon, table);
    }

    /// <summary>Between runs: no table and no journal (a start with a journal replays its containers).</summary>
    public static void DropTable(Setup s)
    {
        if (Directory.Exists(s.Daemon.DataDir)) Directory.Delete(s.Daemon.DataDir, recursive: true);
        using var nft = new LibNftables(Netns.Named(s.Ns));
        nft.Run(NftJson.DeleteTable(s.Table));
    }

    public static async Task RunAsync(Ctx ctx)
    {
        var present = ctx.Short ? 20 : 1000;
        var workers = ctx.Short ? 2 : 20;
        var cycles = ctx.Short ? 3 : 10;
        var settle = TimeSpan.FromSeconds(ctx.Short ? 2 : 10);
        var s = await PrepareAsync(ctx, "d");

        // idle: no containers
        await s.Daemon.StartAsync();
        await Task.Delay(settle);
        var idle = Memory.Of(s.Daemon.Pid);
        var idleMetrics = await Memory.ScrapeAsync(s.Ns);
        await s.Daemon.StopAsync();
        DropTable(s);
        ctx.Log($"daemon idle: {idle} {idleMetrics}");

        // start-up with `present` containers, then churn
        for (var i = 0; i < present; i++) s.Docker.Seed(i);
        await s.Daemon.StartAsync(TimeSpan.FromSeconds(180));
        var startup = s.Daemon.LastStartTime;
        var sync = Regex.Matches(File.ReadAllText(s.Daemon.LogFile), @"initial sync complete: table \S+ with (\d+) containers, (\d+) elements in (\d+) ms").LastOrDefault();
        await Task.Delay(settle);
        var loaded = Memory.Of(s.Daemon.Pid);
        var loadedMetrics = await Memory.ScrapeAsync(s.Ns);
        ctx.Log($"daemon with {present}: start-up {startup.TotalMilliseconds:0} ms ({sync?.Value ?? "no sync line"}); {loaded} {loadedMetrics}");

        // WWBENCH_HOLD_DAEMON=seconds: time to take a heap dump of the daemon with 1,000 containers
        // (dotnet-gcdump collect -p PID; run the bench with WHALEWALL_SANDBOX=off, since a sandboxed
        // daemon has no diagnostics socket)
        if (Environment.GetEnvironmentVariable("WWBENCH_HOLD_DAEMON") is { } hold)
        {
            Console.Error.WriteLine($"HOLD daemon pid {s.Daemon.Pid} for {hold} s");
            await Task.Delay(TimeSpan.FromSeconds(int.Parse(hold)));
        }
        using var monitor = new ElementMonitor(Netns.Named(s.Ns), s.Table);
        await Task.Delay(500);
        var add = new List<double>();
        var remove = new List<double>();
        var missing = 0;
        // each worker runs its own containers (firstIndex + worker * perWorker + cycle): run, wait
        // for the address in the kernel, remove, wait for it to leave; measured cycles pause
        // 20-120 ms between steps and record both delays (null: not seen within 10 s)
        Task ChurnAsync(int perWorker, int firstIndex, string prefix, Action<double?, double?>? record) =>
            Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
            {
                var random = new Random(w);
                for (var c = 0; c < perWorker; c++)
                {
                    var index = firstIndex + w * perWorker + c;
                    var address = Synthetic.Address(index);
                    var connected = s.Docker.Run(index, prefix);
                    var on = await monitor.WaitAsync(address, added: true, connected, TimeSpan.FromSeconds(10));
                    if (record is not null) await Task.Delay(random.Next(20, 120));
                    var died = s.Docker.Remove(index, prefix);
                    var off = await monitor.WaitAsync(address, added: false, died, TimeSpan.FromSeconds(10));
                    if (record is null) continue;
                    record((on - connected) / 1e6, (off - died) / 1e6);
                    await Task.Delay(random.Next(20, 120));
                }
            })));

        // warm-up, not measured: the daemon's first containers after its start-up run code paths
        // for the first time (tier-0 JIT, then tier-1 once hot): a daemon that has been running
        // has paid that
        var warm = ctx.Short ? 1 : 3;
        await ChurnAsync(warm, present + workers * cycles, "cw", record: null);
        await Task.Delay(1500); // the removals' flows are cut within a second
        var (beforeChurn, _) = await DaemonHistograms.ScrapeAsync(s.Ns);
        var cpuBefore = (Daemon: CpuSeconds(s.Daemon.Pid), StandIn: CpuSeconds(s.Docker.Pid), Bench: CpuSeconds(Environment.ProcessId));
        var sw = Stopwatch.StartNew();
        await ChurnAsync(cycles, present, "cd", (on, off) =>
        {
            lock (add)
            {
                if (on is { } a) add.Add(a); else missing++;
                if (off is { } r) remove.Add(r); else missing++;
            }
        });
        var churnSeconds = sw.Elapsed.TotalSeconds;
        var cpu = $"daemon {CpuSeconds(s.Daemon.Pid) - cpuBefore.Daemon:0.0} s, stand-in Docker API {CpuSeconds(s.Docker.Pid) - cpuBefore.StandIn:0.0} s, " +
            $"bench {CpuSeconds(Environment.ProcessId) - cpuBefore.Bench:0.0} s in {churnSeconds:0.0} s on {Environment.ProcessorCount} CPUs";
        var afterChurn = Memory.Of(s.Daemon.Pid);
        await Task.Delay(settle);
        var soon = Memory.Of(s.Daemon.Pid);
        // the daemon compacts its heap when RSS grew, at most once per MinGap (WhaleWall.Host.MemoryHousekeeping)
        var housekept = ctx.Short ? settle : WhaleWall.Host.MemoryHousekeeping.MinGap + WhaleWall.Host.MemoryHousekeeping.TrimEvery;
        await Task.Delay(housekept - settle);
        var settled = Memory.Of(s.Daemon.Pid);
        var inside = DaemonHistograms.Between(beforeChurn, (await DaemonHistograms.ScrapeAsync(s.Ns)).Samples);
        ctx.Log($"daemon churn, the daemon's own histograms: {inside}");
        await s.Daemon.StopAsync();
        File.Copy(s.Daemon.LogFile, Path.Combine(ctx.ArtifactsDir, "bench-daemon-standin.log"), overwrite: true);
        DropTable(s);

        ctx.Log($"daemon churn: {workers} x {cycles} in {churnSeconds:0.0} s (CPU: {cpu}), {monitor.Messages} element notifications ({monitor.Overruns} overruns), {s.Docker.Requests} Docker API requests; add {Stats.P50P99(add)}; remove {Stats.P50P99(remove)}; {missing} not seen; after churn {afterChurn}, {settle.TotalSeconds:0} s later {soon}, {housekept.TotalSeconds:0} s later {settled}");
        var syncText = sync is null ? "no sync line" : $"{sync.Groups[2].Value} elements; the writer's start-up transaction {sync.Groups[3].Value} ms";
        ctx.Report.Add($"Daemon process, stand-in Docker API: start-up with {present:N0} containers, exec -> `initial sync complete`",
            $"{Stats.Ms(startup.TotalMilliseconds)} ({syncText})", "");
        ctx.Report.Add($"Memory: daemon process RSS (VmRSS), stand-in Docker API",
            $"idle (0 containers) {Ctx.Mb(idle.Rss)}; with {present:N0} containers {Ctx.Mb(loaded.Rss)} ({settle.TotalSeconds:0} s after start-up); " +
            $"right after the churn {Ctx.Mb(afterChurn.Rss)}, {settle.TotalSeconds:0} s later {Ctx.Mb(soon.Rss)}, {housekept.TotalSeconds:0} s later {Ctx.Mb(settled.Rss)}; peak {Ctx.Mb(settled.Hwm)} (start-up or churn)",
            "< 150 MB at 1,000 (with 1,000, and 70 s after the churn)", present >= 1000 ? loaded.Rss < 150L * 1048576 && settled.Rss < 150L * 1048576 : null);
        ctx.Report.Add("  RSS split (anon: GC heap, stacks, native heaps; file: mapped assemblies and libraries; shmem: the runtime's double-mapped (W^X) code and stubs), threads, GC heap",
            $"idle {idle.Split} {idleMetrics}; with {present:N0}: {loaded.Split} {loadedMetrics}", "");
        var full = present >= 1000;
        ctx.Report.Add($"Daemon process event -> enforced: `network connect` -> the address in the kernel ({present:N0} present, {workers} containers churning, {add.Count} cycles after {workers * warm} not measured)",
            $"{Stats.P50P99(add)}{(missing > 0 ? $", {missing} not seen in 10 s" : "")}", "p99 < 20 ms", full ? missing == 0 && Stats.Percentile(add, 99) < 20 : null);
        ctx.Report.Add("Daemon process event -> enforced: `die` -> the address out of the kernel",
            Stats.P50P99(remove), "p99 < 20 ms", full ? missing == 0 && Stats.Percentile(remove, 99) < 20 : null);
        ctx.Report.Add("  inside the daemon during the churn (its own /metrics histograms, bucket upper bounds)", inside, "");
        ctx.Report.Add("  CPU time used during the churn (user + system, /proc/PID/stat)", cpu, "");
    }

    /// <summary>User + system CPU time a process has used (/proc/PID/stat, clock ticks of 1/100 s).</summary>
    public static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' '); // after "pid (comm) ": field 3 is fields[0]
        return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0;
    }

    /// <summary>A process' memory from /proc: VmRSS, VmHWM, anonymous vs file-backed RSS, threads.</summary>
    public sealed record Memory(long Rss, long Hwm, long Anon, long File, long Shmem, int Threads)
    {
        public string Split => $"anon {Ctx.Mb(Anon)} + file {Ctx.Mb(File)} + shmem {Ctx.Mb(Shmem)}, {Threads} threads";
        public override string ToString() => $"RSS {Ctx.Mb(Rss)} (peak {Ctx.Mb(Hwm)}; {Split})";

        public static Memory Of(int pid)
        {
            long Kb(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
            long rss = 0, hwm = 0, anon = 0, file = 0, shmem = 0;
            var threads = 0;
            foreach (var line in System.IO.File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:")) rss = Kb(line);
                else if (line.StartsWith("VmHWM:")) hwm = Kb(line);
                else if (line.StartsWith("RssAnon:")) anon = Kb(line);
                else if (line.StartsWith("RssFile:")) file = Kb(line);
                else if (line.StartsWith("RssShmem:")) shmem = Kb(line);
                else if (line.StartsWith("Threads:")) threads = int.Parse(line.Split(':')[1].Trim());
            }
            return new Memory(rss, hwm, anon, file, shmem, threads);
        }

        /// <summary>The GC's own view from the daemon's /metrics (prometheus-net's process metrics).</summary>
        public static async Task<string> ScrapeAsync(string ns)
        {
            var (samples, error) = await DaemonHistograms.ScrapeAsync(ns);
            if (error is not null) return $"(metrics: {error})";
            double Sum(string name) => samples.Where(x => x.Name == name).Sum(x => x.Value);
            return $"GC heap {Ctx.Mb((long)Sum("dotnet_total_memory_bytes"))}, gen0/1/2 collections {Sum("dotnet_collection_count_total"):0}";
        }
    }
}
