using System.Diagnostics;

namespace WhaleWall.TestSupport;

/// <summary>
/// The daemon under test as a real process inside the harness' host namespace:
/// <c>nsenter --net=/run/netns/&lt;host ns&gt; dotnet whalewall.dll run</c>, output to a log file.
/// State (data dir, table name) survives <see cref="StopAsync"/>/<see cref="StartAsync"/>, so a
/// restart is a restart of the same daemon.
/// </summary>
public sealed class WhaleWallDaemon : IAsyncDisposable
{
    public const string ReadyLine = "initial sync complete";

    public string HostNsPath { get; }
    public string DockerHost { get; }
    public string Table { get; }
    public string DataDir { get; }
    public string LogFile { get; }
    public string DllPath { get; }
    /// <summary>The running daemon's pid (next to the log), for the sweep in scripts/test.sh.</summary>
    public string PidFile => Path.ChangeExtension(LogFile, ".pid");
    public IDictionary<string, string> ExtraEnvironment { get; } = new Dictionary<string, string>();
    /// <summary>A command (and its arguments) run inside the namespace that execs the daemon's
    /// command line given after it: `setpriv ...` to run it as another user, or
    /// <see cref="ReadOnlyProcSys"/>; the pid stays the daemon's. Empty: run it directly.</summary>
    public List<string> Wrapper { get; set; } = [];

    /// <summary>For <see cref="Wrapper"/>: the daemon in a mount namespace of its own where
    /// /proc/sys is read-only, as in a container.</summary>
    public static readonly string[] ReadOnlyProcSys =
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
         "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec \"$@\"", "sh"];
    public int Pid => _process is { } p && E2eProcess.IsAlive(p.Id) ? p.Id : 0;
    public bool IsRunning => Pid != 0;
    public TimeSpan LastStartTime { get; private set; }

    private Process? _process;
    private long _logOffsetAtStart;

    public WhaleWallDaemon(string hostNsPath, string dockerHost, string table, string dataDir, string logFile, string? dllPath = null)
    {
        HostNsPath = hostNsPath;
        DockerHost = dockerHost;
        Table = table;
        DataDir = dataDir;
        LogFile = logFile;
        DllPath = dllPath ?? LocateDll();
    }

    /// <summary>whalewall.dll: $WHALEWALL_E2E_DLL, else next to the test assembly (the end-to-end
    /// project references src/Host, so the build copies it there).</summary>
    public static string LocateDll() =>
        System.Environment.GetEnvironmentVariable("WHALEWALL_E2E_DLL") is { Length: > 0 } p
            ? p
            : Path.Combine(AppContext.BaseDirectory, "whalewall.dll");

    /// <summary>For a harness: a unique table and a data dir under the harness directory.</summary>
    public static WhaleWallDaemon For(DockerHarness h)
    {
        var daemon = new WhaleWallDaemon(h.HostNsPath, h.DockerHost, "ww_" + h.RunId.Replace("-", "_"), Path.Combine(h.Dir, "whalewall"), Path.Combine(h.Dir, "whalewall.log"));
        daemon.ExtraEnvironment["WHALEWALL_DOCKER_CONFIG"] = h.DaemonConfig; // the engine's "dns", for _dns_ of containers without --dns
        return daemon;
    }

    public KernelTable KernelTable() => new(HostNsPath, Table);

    /// <summary>Starts the daemon and waits (60 s) for its "initial sync complete" line.</summary>
    public async Task StartAsync(TimeSpan? timeout = null)
    {
        if (IsRunning) throw new InvalidOperationException($"daemon already running (pid {Pid})");
        if (!File.Exists(DllPath))
            throw new FileNotFoundException($"daemon binary {DllPath} does not exist (src/Host not built?)");
        var runtimeConfig = Path.ChangeExtension(DllPath, ".runtimeconfig.json");
        if (!File.Exists(runtimeConfig))
            throw new FileNotFoundException($"{runtimeConfig} does not exist: is src/Host an Exe project?");
        Directory.CreateDirectory(DataDir);
        File.AppendAllText(LogFile, $"==== {DateTime.UtcNow:O} starting whalewall run ====\n");
        _logOffsetAtStart = new FileInfo(LogFile).Length;

        var sw = Stopwatch.StartNew();
        _process = E2eProcess.StartLogged(LogFile, Environment(), ["nsenter", "--net=" + HostNsPath, .. Wrapper, DotnetHost(), DllPath, "run"]);
        File.WriteAllText(PidFile, _process.Id + "\n");
        var limit = timeout ?? TimeSpan.FromSeconds(60);
        while (true)
        {
            if (LogSinceStart().Contains(ReadyLine, StringComparison.OrdinalIgnoreCase)) break;
            if (_process.HasExited || !E2eProcess.IsAlive(_process.Id))
                throw new InvalidOperationException(
                    $"whalewall exited before \"{ReadyLine}\" (code {SafeExitCode()}):\n{LogTail()}");
            if (sw.Elapsed > limit)
            {
                await E2eProcess.TerminateAsync(_process.Id, TimeSpan.FromSeconds(5));
                throw new TimeoutException($"whalewall did not print \"{ReadyLine}\" within {limit.TotalSeconds:F0} s:\n{LogTail()}");
            }
            await Task.Delay(50);
        }
        LastStartTime = sw.Elapsed;
    }

    /// <summary>The daemon's environment: Docker, table, state (data dir; WHALEWALL_DB and
    /// WHALEWALL_NODE_NAME when set in <see cref="ExtraEnvironment"/>), log level.</summary>
    public Dictionary<string, string> Environment()
    {
        var env = new Dictionary<string, string>
        {
            ["DOCKER_HOST"] = DockerHost,
            ["WHALEWALL_NFT_TABLE"] = Table,
            ["WHALEWALL_DATA_DIR"] = DataDir,
            ["WHALEWALL_LOG_LEVEL"] = "debug",
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            ["DOTNET_NOLOGO"] = "1",
        };
        foreach (var (k, v) in ExtraEnvironment) env[k] = v;
        return env;
    }

    /// <summary>Runs a one-shot command (`status --json`, `flush`) with the daemon's
    /// environment in its namespace.</summary>
    public (int Code, string Out, string Err) Cli(params string[] args)
    {
        var psi = new ProcessStartInfo("nsenter")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "--net=" + HostNsPath, DotnetHost(), DllPath }.Concat(args)) psi.ArgumentList.Add(a);
        foreach (var (k, v) in Environment()) psi.Environment[k] = v;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start whalewall");
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(60_000))
        {
            E2eProcess.Signal(p.Id, E2eProcess.SIGKILL);
            throw new TimeoutException($"whalewall {string.Join(' ', args)} did not finish within 60 s");
        }
        return (p.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
    }

    private string SafeExitCode()
    {
        // the process may be gone before Process has reaped it: wait for that, then read the code
        try { return _process!.WaitForExit(TimeSpan.FromSeconds(5)) ? _process.ExitCode.ToString() : "?"; } catch { return "?"; }
    }

    /// <summary>SIGTERM and wait (SIGKILL after the grace period). True if it stopped on SIGTERM.</summary>
    public async Task<bool> StopAsync(TimeSpan? grace = null)
    {
        if (_process is null) return true;
        var ok = await E2eProcess.TerminateAsync(_process.Id, grace ?? TimeSpan.FromSeconds(15));
        _process.Dispose();
        _process = null;
        return ok;
    }

    /// <summary>SIGKILL, by pid.</summary>
    public async Task Kill()
    {
        if (_process is null) return;
        E2eProcess.Signal(_process.Id, E2eProcess.SIGKILL);
        await E2eProcess.WaitExitAsync(_process.Id, TimeSpan.FromSeconds(10));
        _process.Dispose();
        _process = null;
    }

    public string LogTail(int lines = 80) => E2eProcess.Tail(LogFile, lines);

    private string LogSinceStart()
    {
        try
        {
            using var fs = new FileStream(LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            fs.Seek(_logOffsetAtStart, SeekOrigin.Begin);
            return new StreamReader(fs).ReadToEnd();
        }
        catch (IOException) { return ""; }
    }

    public static string DotnetHost()
    {
        if (System.Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } p && File.Exists(p)) return p;
        foreach (var dir in (System.Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            var c = Path.Combine(dir, "dotnet");
            if (File.Exists(c)) return c;
        }
        return "dotnet";
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}
