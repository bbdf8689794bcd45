namespace WhaleWall.Host.Sandbox;

/// <summary>Test hook (WHALEWALL_SANDBOX_SELFTEST=&lt;path&gt;): once the daemon is up, probes
/// the sandbox from many threads — the caller's, new dedicated threads, and as many thread-pool
/// threads as can be made to run at once (the pool also runs the actors) — and logs one line
/// per thread: <c>sandbox-selftest tid=N where=W open=E unshare=E exec=E execveat=E
/// clone_newnet=E clone_plain=E clone3=E io_uring=E/E/E</c> (E an errno name, see
/// <see cref="Probes"/>), then a summary line with the number of threads the process has. The
/// exec probes run an empty file the daemon has just written to its data dir. Before the
/// second stage denies execve, <see cref="LogDataDirExec"/> logs what landlock alone does with
/// that file. The end-to-end tests read these lines.
/// <para>An execve that enters the kernel — allowed, or refused later by landlock — marks the
/// process' shared fs_struct <c>in_exec</c> for its duration, and a thread created meanwhile
/// (clone with CLONE_FS) fails with EAGAIN, which the .NET runtime turns into "Out of memory."
/// and an abort. So while execve is not filtered (sandbox off), the exec probes run on the
/// caller's thread only, before the probes that make threads; the others say
/// <c>exec=skipped</c>. With the filter, execve never reaches the kernel and every thread is
/// probed.</para></summary>
public static class SandboxSelfTest
{
    public const string Variable = "WHALEWALL_SANDBOX_SELFTEST";
    private const string ExecProbeName = ".sandbox-selftest-exec";

    public static async Task RunAsync(string path, Action<string> log)
    {
        var exec = SandboxEntry.DataDir is { } dataDir ? WriteExecProbe(dataDir) : null;
        var lines = new List<string>();
        void Probe(string where)
        {
            var probeExec = exec is not null && (SandboxEntry.ExecFiltered || where == "caller");
            var line = $"sandbox-selftest tid={Probes.ThreadId()} where={where} open={Probes.Name(Probes.OpenErrno(path))} " +
                       $"unshare={Probes.Name(Probes.UnshareNothingErrno())} " +
                       (exec is null ? "exec=none execveat=none " :
                           !probeExec ? "exec=skipped execveat=skipped " :
                           $"exec={Probes.Name(Probes.ExecEmptyFileErrno(exec))} execveat={Probes.Name(Probes.ExecveatEmptyFileErrno(exec))} ") +
                       $"clone_newnet={Probes.Name(Probes.InvalidCloneErrno(Probes.CloneNewNet))} " +
                       $"clone_plain={Probes.Name(Probes.InvalidCloneErrno(0))} clone3={Probes.Name(Probes.Clone3Errno())} " +
                       $"io_uring={IoUring()}";
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

        if (exec is not null) File.Delete(exec);
        lock (lines) foreach (var l in lines) log(l);
        var threads = Directory.GetDirectories("/proc/self/task").Length;
        log($"sandbox-selftest done: {lines.Count} probes, process has {threads} threads");
    }

    /// <summary>Called by the second stage before it loads the filter that denies execve: with
    /// seccomp still letting execve through, the errno is landlock's (or the mount's) answer to
    /// running a file the daemon wrote to its data dir.</summary>
    internal static void LogDataDirExec(string dataDir, Action<string> log)
    {
        var exec = WriteExecProbe(dataDir);
        try { log($"sandbox-selftest stage=before-exec-filter exec_datadir={Probes.Name(Probes.ExecEmptyFileErrno(exec))}"); }
        finally { File.Delete(exec); }
    }

    private static string IoUring()
    {
        var (setup, enter, register) = Probes.IoUringErrnos();
        return $"{Probes.Name(setup)}/{Probes.Name(enter)}/{Probes.Name(register)}";
    }

    /// <summary>An empty file with every execute bit, written by the daemon itself.</summary>
    private static string WriteExecProbe(string dataDir)
    {
        var path = Path.Combine(dataDir, ExecProbeName);
        File.WriteAllBytes(path, []);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                   UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        return path;
    }
}
