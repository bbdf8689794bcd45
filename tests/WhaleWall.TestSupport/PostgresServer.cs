using System.Net;
using System.Net.Sockets;

namespace WhaleWall.TestSupport;

/// <summary>A throw-away PostgreSQL server for tests: the Debian server binaries, a cluster
/// made by initdb in a temp dir, running as the postgres user on 127.0.0.1 and a free port
/// (plus a unix socket in the same dir), output to a log file; stopped by pid.</summary>
public sealed class PostgresServer : IAsyncDisposable
{
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "wwpg-" + Guid.NewGuid().ToString("N")[..8]);
    public string DataDir => Path.Combine(Dir, "data");
    public string LogFile => Path.Combine(Dir, "postgres.log");
    public int Port { get; private set; }
    public int Pid { get; private set; }
    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Pooling=true;Timeout=15";

    /// <summary>Through the unix socket in <see cref="Dir"/>: reachable from any network
    /// namespace (127.0.0.1 is per namespace).</summary>
    public string SocketConnectionString => $"Host={Dir};Port={Port};Username=postgres;Database=postgres;Pooling=true;Timeout=15";

    /// <summary>/usr/lib/postgresql/&lt;newest&gt;/bin (Debian's postgresql package).</summary>
    public static string BinDir
    {
        get
        {
            var root = "/usr/lib/postgresql";
            var newest = Directory.Exists(root)
                ? Directory.GetDirectories(root).Where(d => File.Exists(Path.Combine(d, "bin", "postgres")))
                    .OrderByDescending(d => int.TryParse(Path.GetFileName(d), out var v) ? v : 0).FirstOrDefault()
                : null;
            return newest is null
                ? throw new InvalidOperationException("PostgreSQL server binaries not found under /usr/lib/postgresql (run scripts/install-deps.sh)")
                : Path.Combine(newest, "bin");
        }
    }

    public async Task StartAsync()
    {
        var bin = BinDir;
        Directory.CreateDirectory(Dir);
        Shell.Run("chown", "postgres:postgres", Dir);
        AsPostgres(Path.Combine(bin, "initdb"), "-D", DataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync");
        Port = FreePort();
        var process = E2eProcess.StartLogged(LogFile, null, "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--",
            Path.Combine(bin, "postgres"), "-D", DataDir, "-k", Dir, "-h", "127.0.0.1", "-p", Port.ToString(),
            "-c", "fsync=off", "-c", "max_connections=200");
        Pid = process.Id;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (!E2eProcess.IsAlive(Pid)) throw new InvalidOperationException($"postgres exited:\n{E2eProcess.Tail(LogFile)}");
            if (Shell.Try(Path.Combine(bin, "pg_isready"), "-h", "127.0.0.1", "-p", Port.ToString(), "-q").Code == 0) return;
            await Task.Delay(100);
        }
        throw new TimeoutException($"postgres not ready within 30 s:\n{E2eProcess.Tail(LogFile)}");
    }

    /// <summary>Hangs the server without closing a connection: SIGSTOP to the postmaster, then to
    /// each of its children (the backends serving open connections, found by their parent pid).
    /// Returns the pids stopped, for <see cref="Thaw"/>.</summary>
    public IReadOnlyList<int> Freeze()
    {
        if (Pid == 0) throw new InvalidOperationException("the server is not running");
        var stopped = new List<int>();
        if (E2eProcess.Signal(Pid, SIGSTOP)) stopped.Add(Pid);
        // the postmaster forks nothing while stopped: its children are now a fixed set
        foreach (var child in ChildrenOf(Pid))
            if (E2eProcess.Signal(child, SIGSTOP)) stopped.Add(child);
        _frozen = stopped;
        return stopped;
    }

    /// <summary>SIGCONT to every process <see cref="Freeze"/> stopped (children first).</summary>
    public void Thaw()
    {
        foreach (var pid in _frozen.AsEnumerable().Reverse()) E2eProcess.Signal(pid, SIGCONT);
        _frozen = [];
    }

    /// <summary>Whether a process is stopped (state T in /proc/pid/stat).</summary>
    public static bool IsStopped(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('T');
        }
        catch (IOException) { return false; }
    }

    private const int SIGSTOP = 19, SIGCONT = 18;
    private List<int> _frozen = [];

    private static IEnumerable<int> ChildrenOf(int parent)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            string stat;
            try { stat = File.ReadAllText(Path.Combine(dir, "stat")); } catch (IOException) { continue; } catch (UnauthorizedAccessException) { continue; }
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            if (fields.Length > 1 && int.TryParse(fields[1], out var ppid) && ppid == parent) yield return pid;
        }
    }

    private static string AsPostgres(params string[] argv) =>
        Shell.Run("setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", .. argv]);

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        Thaw();
        if (Pid != 0)
        {
            // SIGINT: PostgreSQL's fast shutdown; by pid, never by name
            E2eProcess.Signal(Pid, 2);
            if (!await E2eProcess.WaitExitAsync(Pid, TimeSpan.FromSeconds(20)))
            {
                E2eProcess.Signal(Pid, E2eProcess.SIGKILL);
                await E2eProcess.WaitExitAsync(Pid, TimeSpan.FromSeconds(10));
            }
            Pid = 0;
        }
        try { Directory.Delete(Dir, true); } catch { }
    }
}
