using System.Collections;
using System.Runtime.InteropServices;
using System.Text;

namespace WhaleWall.Host.Sandbox;

/// <summary>
/// Puts the daemon in its sandbox before it does anything else.
///
/// Landlock restricts only the calling thread and what it later creates or executes. By the
/// time managed code runs, the .NET runtime has already started threads of its own (finalizer,
/// tiered compilation, signal handling, ...), and this kernel (landlock ABI 7) has no way to
/// restrict threads that already exist (checked on the 6.18 kernel here: landlock_restrict_self
/// accepts the ABI 7 log flags 1, 2 and 4 and rejects 1 &lt;&lt; 3, where a TSYNC flag would go, with
/// EINVAL). So the first stage restricts its main thread, loads the seccomp filter, and re-executes
/// the same command line: execve replaces the whole process by a single thread that inherits the
/// landlock domain and the seccomp filter, and every thread the new runtime starts inherits
/// them in turn. The second stage checks that both are in force, then loads a second seccomp
/// filter that denies execve and execveat (the first must still allow the re-exec), and goes on.
/// </summary>
public static class SandboxEntry
{
    /// <summary>Internal marker set by the first stage for the second; not a setting.</summary>
    public const string StageVariable = "WHALEWALL_SANDBOX_STAGE";
    public const string SwitchVariable = "WHALEWALL_SANDBOX";

    /// <summary>The data dir the sandbox was entered for (the self-test writes its exec probe there).</summary>
    internal static string? DataDir { get; private set; }

    /// <summary>The second stage's filter denies execve: an exec attempt never enters the kernel's
    /// exec path (see <see cref="SandboxSelfTest"/> for why that matters to the self-test).</summary>
    internal static bool ExecFiltered { get; private set; }

    /// <summary>Returns when the caller may go on (sandboxed, or sandbox off). In the first stage
    /// it does not return: it re-executes the process. Returns what is missing of the sandbox
    /// (for `/healthz`), null when it is complete or switched off on purpose.</summary>
    public static string? Enter(Options options, Action<string> info, Action<string> warn)
    {
        DataDir = options.DataDir;
        if (Environment.GetEnvironmentVariable(SwitchVariable) is { } s && s.Equals("off", StringComparison.OrdinalIgnoreCase))
        {
            warn("!!! WHALEWALL_SANDBOX=off: running WITHOUT the landlock and seccomp sandbox. The daemon holds CAP_NET_ADMIN " +
                 "and reads the Docker socket: unset WHALEWALL_SANDBOX outside debugging. !!!");
            return null;
        }

        var stage = Environment.GetEnvironmentVariable(StageVariable);
        if (stage is { Length: > 0 })
        {
            Environment.SetEnvironmentVariable(StageVariable, null);
            Verify(stage, info, warn);
            return Missing(stage.Split(','));
        }

        Directory.CreateDirectory(options.DataDir);
        RemoveDiagnosticsSocket();   // before landlock forbids it
        var applied = new List<string>();
        var abi = Landlock.AbiVersion();
        if (abi > 0)
        {
            // paths that do not exist on this host (e.g. /lib32) get no rule, which only narrows
            var rules = SandboxPaths.For(options.DataDir, options.DockerHost);
            foreach (var above in SandboxPaths.ExecutableAbove(options.DataDir, rules))
                warn($"!!! sandbox: the data dir {options.DataDir} lies beneath {above}, which the sandbox must leave executable: " +
                     "files written to the data dir can be executed as far as landlock is concerned (seccomp still denies execve); " +
                     "move WHALEWALL_DATA_DIR out of it !!!");
            Landlock.RestrictSelf(abi, rules);
            applied.Add($"landlock{abi}");
        }
        else
            warn("!!! sandbox: landlock is not available (kernel without landlock, or blocked by the container runtime's seccomp profile): " +
                 "the file system is NOT restricted !!!");

        if (Seccomp.Available())
        {
            var unknown = Seccomp.Load();
            applied.Add("seccomp");
            if (unknown.Count > 0) info($"sandbox: libseccomp does not know {string.Join(", ", unknown)} (left allowed)");
        }
        else
            warn("!!! sandbox: libseccomp.so.2 is not installed: system calls are NOT filtered !!!");

        if (applied.Count == 0) return Missing([]);   // nothing to inherit: no need to re-exec
        ReExec(string.Join(",", applied));
        return null; // not reached: ReExec replaces the process or throws
    }

    /// <summary>The layers that are not in force, without WHALEWALL_SANDBOX=off; null when both are.</summary>
    public static string? Missing(IReadOnlyCollection<string> applied)
    {
        var missing = new List<string>();
        if (!applied.Any(a => a.StartsWith("landlock", StringComparison.Ordinal)))
            missing.Add("landlock is not available: the file system is NOT restricted");
        if (!applied.Contains("seccomp")) missing.Add("libseccomp.so.2 is not installed: system calls are NOT filtered");
        return missing.Count == 0 ? null : string.Join("; ", missing) + $" (set {SwitchVariable}=off to run without a sandbox on purpose)";
    }

    private static void Verify(string stage, Action<string> info, Action<string> warn)
    {
        var parts = stage.Split(',');
        var problems = new List<string>();
        if (parts.Contains("seccomp") && ReadStatus("Seccomp") != "2")
            problems.Add($"seccomp filter missing (Seccomp: {ReadStatus("Seccomp")})");
        var landlock = parts.FirstOrDefault(p => p.StartsWith("landlock", StringComparison.Ordinal));
        if (landlock is not null)
        {
            var errno = Probes.OpenErrno("/");
            if (errno != Probes.EACCES) problems.Add($"landlock not in force: open(\"/\") gave {Probes.Name(errno)}, not EACCES");
        }
        if (problems.Count > 0)
            throw new InvalidOperationException("sandbox: " + string.Join("; ", problems));

        var seccomp = "no seccomp";
        if (parts.Contains("seccomp"))
        {
            // the re-exec is done: from here on the process runs no program at all, its own included
            if (Environment.GetEnvironmentVariable(SandboxSelfTest.Variable) is { Length: > 0 } && DataDir is { } dataDir)
                SandboxSelfTest.LogDataDirExec(dataDir, info);
            var unknown = Seccomp.LoadAfterStart();
            ExecFiltered = true;
            if (unknown.Count > 0) info($"sandbox: libseccomp does not know {string.Join(", ", unknown)} (left allowed)");
            seccomp = $"seccomp ({Seccomp.Denied.Length} system calls denied, clone with namespace flags denied, " +
                      $"{string.Join("/", Seccomp.NotImplemented)} ENOSYS; {string.Join("/", Seccomp.DeniedAfterStart)} denied after the re-exec)";
        }
        info($"sandbox: {(landlock is null ? "no landlock" : $"landlock ABI {landlock["landlock".Length..]}")}, {seccomp}, " +
             $"on every thread (applied before re-exec; NoNewPrivs {ReadStatus("NoNewPrivs")})");
    }

    private static string? ReadStatus(string key) =>
        File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(key + ":", StringComparison.Ordinal))?
            .Split(':', 2)[1].Trim();

    [DllImport("libc", SetLastError = true)] private static extern int execve(string path, string?[] argv, string?[] envp);

    private static void ReExec(string stage)
    {
        // argv exactly as this process got it (dotnet host + dll, or the apphost)
        var argv = File.ReadAllBytes("/proc/self/cmdline");
        var args = Encoding.UTF8.GetString(argv).TrimEnd('\0').Split('\0').Cast<string?>().Append((string?)null).ToArray();
        var env = Environment.GetEnvironmentVariables().Cast<DictionaryEntry>()
            .Where(e => (string)e.Key != StageVariable)
            .Select(e => $"{e.Key}={e.Value}")
            .Append($"{StageVariable}={stage}")
            .Cast<string?>().Append((string?)null).ToArray();
        execve("/proc/self/exe", args, env);
        throw new InvalidOperationException($"sandbox: re-exec failed: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>The runtime's diagnostics socket (dotnet-diagnostic-PID-KEY-socket in the temp dir)
    /// is named after the pid and start time, which execve keeps: remove the first stage's, so
    /// nothing is left behind (the second stage cannot create one: the temp dir is outside the
    /// sandbox, so dotnet-counters and friends do not attach to a sandboxed daemon).</summary>
    private static void RemoveDiagnosticsSocket()
    {
        try
        {
            // the key is field 22 of /proc/self/stat (start time); a directory listing does not
            // show sockets, so the name is built rather than searched for
            var stat = File.ReadAllText("/proc/self/stat");
            var startTime = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19];
            File.Delete(Path.Combine(Path.GetTempPath(), $"dotnet-diagnostic-{Environment.ProcessId}-{startTime}-socket"));
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
