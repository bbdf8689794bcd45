namespace WhaleWall.Host.Sandbox;

/// <summary>Test hook (WHALEWALL_SANDBOX_SELFTEST=&lt;path&gt;): once the daemon is up, probes
/// the sandbox from many threads — the caller's, new dedicated threads, and as many thread-pool
/// threads as can be made to run at once (the pool also runs the actors) — and logs one line
/// per thread: <c>sandbox-selftest tid=N where=W open=ERRNO unshare=ERRNO</c>, then a summary
/// line with the number of threads the process has. The end-to-end tests read these lines.</summary>
public static class SandboxSelfTest
{
    public const string Variable = "WHALEWALL_SANDBOX_SELFTEST";

    public static async Task RunAsync(string path, Action<string> log)
    {
        var lines = new List<string>();
        void Probe(string where)
        {
            var line = $"sandbox-selftest tid={Probes.ThreadId()} where={where} open={Probes.Name(Probes.OpenErrno(path))} unshare={Probes.Name(Probes.UnshareNothingErrno())}";
            lock (lines) lines.Add(line);
        }

        Probe("caller");
        var dedicated = Enumerable.Range(0, 4).Select(i => new Thread(() => Probe("thread")) { IsBackground = true }).ToList();
        dedicated.ForEach(t => t.Start());
        dedicated.ForEach(t => t.Join());
        // a barrier holds each pool work item until all have started, so they run on distinct threads
        var width = Math.Max(2, Environment.ProcessorCount * 2);
        using var barrier = new Barrier(width);
        await Task.WhenAll(Enumerable.Range(0, width).Select(_ => Task.Factory.StartNew(() =>
        {
            barrier.SignalAndWait(TimeSpan.FromSeconds(10));
            Probe("pool");
        }, TaskCreationOptions.PreferFairness)));

        lock (lines) foreach (var l in lines) log(l);
        var threads = Directory.GetDirectories("/proc/self/task").Length;
        log($"sandbox-selftest done: {lines.Count} probes, process has {threads} threads");
    }
}
