using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace WhaleWall.EndToEnd;

/// <summary>
/// The daemon's landlock + seccomp sandbox, probed from inside the running daemon through its
/// test hook (WHALEWALL_SANDBOX_SELFTEST=&lt;path&gt;: open that file and call unshare(0) on the
/// caller's thread, new threads and thread-pool threads, and log the errno of each). A second
/// daemon with a table of its own runs next to the collection's; the collection's own daemon
/// (the one every other end-to-end test uses) runs with the sandbox on as well.
/// </summary>
[Collection(E2eCollection.Name)]
public sealed class SandboxTests(E2eFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;

    private async Task<(WhaleWallDaemon D, string Log)> StartProbingDaemon(string name, string secret, Dictionary<string, string>? env = null)
    {
        var d = new WhaleWallDaemon(H.HostNsPath, H.DockerHost, "ww_" + name + "_" + H.RunId.Replace("-", "_")[4..],
            Path.Combine(H.Dir, name + "-data"), Path.Combine(H.Dir, $"whalewall-{name}.log"));
        d.ExtraEnvironment[Host.Sandbox.SandboxSelfTest.Variable] = secret;
        foreach (var (k, v) in env ?? new()) d.ExtraEnvironment[k] = v;
        await d.StartAsync();
        var ok = await E2eProcess.Eventually(() => File.ReadAllText(d.LogFile).Contains("sandbox-selftest done"), TimeSpan.FromSeconds(20));
        Assert.True(ok, "the self-test did not finish:\n" + d.LogTail());
        return (d, File.ReadAllText(d.LogFile));
    }

    private static async Task StopAndDropTable(WhaleWallDaemon d)
    {
        await d.StopAsync();
        Shell.Try("nsenter", "--net=" + d.HostNsPath, "nft", "delete", "table", "inet", d.Table);
    }

    private static List<string> ProbeLines(string log) =>
        log.Split('\n').Where(l => l.StartsWith("sandbox-selftest tid=", StringComparison.Ordinal)).ToList();

    private string Secret()
    {
        // outside every path the sandbox allows (the harness dir is not the daemon's data dir)
        var path = Path.Combine(H.Dir, "secret-" + Guid.NewGuid().ToString("N")[..6]);
        File.WriteAllText(path, "not for the daemon\n");
        return path;
    }

    [Fact]
    public Task Sandboxed_daemon_cannot_open_files_outside_its_paths_nor_make_denied_syscalls_on_any_thread() => fx.Run(output, async () =>
    {
        var secret = Secret();
        Assert.Equal("not for the daemon\n", File.ReadAllText(secret));   // readable without the sandbox
        var (d, log) = await StartProbingDaemon("sbx", secret);
        try
        {
            Assert.Contains("sandbox: landlock ABI", log);
            var lines = ProbeLines(log);
            output.WriteLine(string.Join('\n', lines));
            Assert.True(lines.Count >= 9, $"expected >= 9 probes, got {lines.Count}");
            Assert.All(lines, l => Assert.Contains("open=EACCES unshare=EPERM", l));
            var tids = lines.Select(l => l.Split(' ')[1]).Distinct().Count();
            Assert.True(tids >= 6, $"probes ran on only {tids} distinct threads");
            Assert.Contains(lines, l => l.Contains("where=pool"));
            Assert.Contains(lines, l => l.Contains("where=thread"));

            // the seccomp filter and no_new_privs on every thread the daemon has, read by the kernel
            var tasks = Directory.GetDirectories($"/proc/{d.Pid}/task");
            Assert.True(tasks.Length > 5, $"only {tasks.Length} threads?");
            foreach (var t in tasks)
            {
                var status = File.ReadAllLines(Path.Combine(t, "status"));
                Assert.Contains("Seccomp:\t2", status);
                Assert.Contains("NoNewPrivs:\t1", status);
            }

            // and it still does its work: an opted-in container gets its elements in this daemon's table
            var c = await H.RunContainerAsync(fx.Name("sbx"), new ContainerOptions { Labels = E2eLabels.OptIn() });
            await d.KernelTable().WaitManaged(await c.IpAsync());
            await c.RemoveAsync();
        }
        finally { await StopAndDropTable(d); }
    });

    [Fact]
    public Task Collection_daemon_runs_sandboxed() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        Assert.Contains("sandbox: landlock ABI", File.ReadAllText(fx.Daemon.LogFile));
        foreach (var t in Directory.GetDirectories($"/proc/{fx.Daemon.Pid}/task"))
            Assert.Contains("Seccomp:\t2", File.ReadAllLines(Path.Combine(t, "status")));
    });

    [Fact]
    public Task Sandbox_off_is_logged_loudly_and_then_the_same_probes_succeed() => fx.Run(output, async () =>
    {
        var secret = Secret();
        var (d, log) = await StartProbingDaemon("nosbx", secret, new() { [Host.Sandbox.SandboxEntry.SwitchVariable] = "off" });
        try
        {
            Assert.Contains("WHALEWALL_SANDBOX=off: running WITHOUT the landlock and seccomp sandbox", log);
            var lines = ProbeLines(log);
            Assert.NotEmpty(lines);
            Assert.All(lines, l => Assert.Contains("open=ok unshare=ok", l));
            Assert.Contains("Seccomp:\t0", File.ReadAllLines($"/proc/{d.Pid}/status"));
        }
        finally { await StopAndDropTable(d); }
    });
}
