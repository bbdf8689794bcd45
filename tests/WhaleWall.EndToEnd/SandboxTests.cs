using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace WhaleWall.EndToEnd;

/// <summary>
/// The daemon's landlock + seccomp sandbox, probed from inside the running daemon through its
/// test hook (WHALEWALL_SANDBOX_SELFTEST=&lt;path&gt;: on the caller's thread, new threads and
/// thread-pool threads, open that file, unshare(0), execve/execveat an empty file the daemon
/// wrote to its data dir, clone with CLONE_NEWNET, clone3, io_uring, and log the errno of each;
/// see Host/Sandbox/Probes.cs for why none of them can succeed even without the sandbox). Daemons
/// with tables of their own run next to the collection's; the collection's own daemon (the one
/// every other end-to-end test uses) runs with the sandbox on as well, so every other test also
/// shows that the daemon works with these denials (threads, libnftables, SQLite, Docker).
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

    /// <summary>What one sandboxed daemon's self-test showed (probe lines, and every thread's
    /// /proc status read from outside), shared by the tests below: the daemon is started once.</summary>
    private sealed record ProbeRun(string Log, List<string> Lines, List<string[]> TaskStatus);

    private static Task<ProbeRun>? _probeRun;
    private static readonly object ProbeRunLock = new();

    private Task<ProbeRun> SharedProbeRun()
    {
        lock (ProbeRunLock) return _probeRun ??= RunProbingDaemonOnce();
    }

    private async Task<ProbeRun> RunProbingDaemonOnce()
    {
        var (d, log) = await StartProbingDaemon("sbxp", Secret());
        try
        {
            var status = Directory.GetDirectories($"/proc/{d.Pid}/task").Select(t => File.ReadAllLines(Path.Combine(t, "status"))).ToList();
            return new ProbeRun(log, ProbeLines(log), status);
        }
        finally { await StopAndDropTable(d); }
    }

    private static bool IoUringEnabled =>
        !File.Exists("/proc/sys/kernel/io_uring_disabled") || File.ReadAllText("/proc/sys/kernel/io_uring_disabled").Trim() == "0";

    private async Task<List<string>> SandboxedProbeLines()
    {
        var run = await SharedProbeRun();
        output.WriteLine(string.Join('\n', run.Lines));
        Assert.True(run.Lines.Count >= 9, $"expected >= 9 probes, got {run.Lines.Count}");
        Assert.Contains(run.Lines, l => l.Contains("where=pool"));
        Assert.Contains(run.Lines, l => l.Contains("where=thread"));
        return run.Lines;
    }

    [Fact]
    public Task After_start_the_daemon_cannot_execve_nor_execveat_on_any_thread() => fx.Run(output, async () =>
    {
        var run = await SharedProbeRun();
        // seccomp is checked before landlock: EPERM is the second stage's filter, not the data dir rule
        Assert.All(await SandboxedProbeLines(), l => Assert.Contains("exec=EPERM execveat=EPERM", l));
        // the first stage's filter and the second stage's, stacked, on every thread
        Assert.True(run.TaskStatus.Count > 5, $"only {run.TaskStatus.Count} threads?");
        Assert.All(run.TaskStatus, s => Assert.Contains("Seccomp_filters:\t2", s));
        Assert.Contains("execve/execveat denied after the re-exec", run.Log);
    });

    [Fact]
    public Task The_daemon_cannot_clone_into_new_namespaces_and_clone3_is_ENOSYS_yet_threads_start() => fx.Run(output, async () =>
    {
        // clone with CLONE_NEWNET: denied on the flag; clone without namespace flags: the kernel's
        // own EINVAL (the probe's flags are invalid), so the filter inspects flags rather than
        // denying clone; clone3, whose flags seccomp cannot read: ENOSYS, so glibc falls back to clone
        Assert.All(await SandboxedProbeLines(), l => Assert.Contains("clone_newnet=EPERM clone_plain=EINVAL clone3=ENOSYS", l));
        // and threads are still created: the dedicated probe threads ran, the runtime has its pool
        var run = await SharedProbeRun();
        Assert.True(run.Lines.Count(l => l.Contains("where=thread")) == 4, "the four dedicated probe threads did not all run");
        Assert.Matches(@"process has ([6-9]|\d\d+) threads", run.Log);
    });

    [Fact]
    public Task The_daemon_cannot_set_up_or_use_io_uring() => fx.Run(output, async () =>
    {
        if (!IoUringEnabled) output.WriteLine("note: io_uring is disabled by sysctl on this kernel, so EPERM would also be the kernel's answer");
        Assert.All(await SandboxedProbeLines(), l => Assert.Contains("io_uring=EPERM/EPERM/EPERM", l));
    });

    [Fact]
    public Task A_file_the_daemon_writes_to_its_data_dir_cannot_be_executed_even_before_execve_is_denied() => fx.Run(output, async () =>
    {
        // probed by the second stage before it loads the execve filter: landlock alone says EACCES
        // (without the rule the kernel would get as far as ENOEXEC: the file is empty)
        var run = await SharedProbeRun();
        var line = Assert.Single(run.Log.Split('\n'), l => l.StartsWith("sandbox-selftest stage=before-exec-filter", StringComparison.Ordinal));
        output.WriteLine(line);
        Assert.EndsWith("exec_datadir=EACCES", line.Trim());
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
    public Task Sandbox_off_is_logged_loudly_and_then_the_probes_get_the_kernels_own_answers() => fx.Run(output, async () =>
    {
        var secret = Secret();
        var (d, log) = await StartProbingDaemon("nosbx", secret, new() { [Host.Sandbox.SandboxEntry.SwitchVariable] = "off" });
        try
        {
            Assert.Contains("WHALEWALL_SANDBOX=off: running WITHOUT the landlock and seccomp sandbox", log);
            var lines = ProbeLines(log);
            Assert.NotEmpty(lines);
            Assert.All(lines, l => Assert.Contains("open=ok unshare=ok", l));
            // the kernel's own answers to the probes the sandbox denies: they are built not to succeed
            // exec only on the caller's thread while execve is not filtered (SandboxSelfTest says why)
            Assert.Contains("exec=ENOEXEC execveat=ENOEXEC", Assert.Single(lines, l => l.Contains("where=caller")));
            Assert.All(lines.Where(l => !l.Contains("where=caller")), l => Assert.Contains("exec=skipped execveat=skipped", l));
            Assert.All(lines, l => Assert.Contains("clone_newnet=EINVAL clone_plain=EINVAL clone3=EINVAL", l));
            if (IoUringEnabled) Assert.All(lines, l => Assert.Contains("io_uring=EFAULT/EBADF/EBADF", l));
            Assert.DoesNotContain("stage=before-exec-filter", log);
            Assert.Contains("Seccomp:\t0", File.ReadAllLines($"/proc/{d.Pid}/status"));
        }
        finally { await StopAndDropTable(d); }
    });
}
