using System.Diagnostics;
using System.Runtime.InteropServices;

namespace WhaleWall.TestSupport;

/// <summary>Background processes for the end-to-end harness: output always goes to a file,
/// processes are ended by pid only.</summary>
public static class E2eProcess
{
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;

    [DllImport("libc", SetLastError = true, EntryPoint = "kill")]
    private static extern int sys_kill(int pid, int sig);

    /// <summary>Sends a signal to one pid. Returns false if the process does not exist.</summary>
    public static bool Signal(int pid, int sig) => pid > 0 && sys_kill(pid, sig) == 0;

    public static bool IsAlive(int pid)
    {
        if (pid <= 0 || !Directory.Exists($"/proc/{pid}")) return false;
        try
        {
            // a zombie still has /proc/<pid>; treat it as dead
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
            return state != "Z" && state != "X";
        }
        catch (IOException) { return false; }
    }

    /// <summary>Starts <paramref name="argv"/> with stdout+stderr appended to <paramref name="logFile"/>.
    /// A shell execs the program, so the returned process' pid is the program's pid.</summary>
    public static Process StartLogged(string logFile, IDictionary<string, string>? env, params string[] argv)
    {
        var psi = new ProcessStartInfo("/bin/sh")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = false,
            RedirectStandardError = false,
        };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$@\" </dev/null >>\"$E2E_LOG\" 2>&1");
        psi.ArgumentList.Add("sh");
        foreach (var a in argv) psi.ArgumentList.Add(a);
        psi.Environment["E2E_LOG"] = logFile;
        if (env is not null)
            foreach (var (k, v) in env) psi.Environment[k] = v;
        return Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {argv[0]}");
    }

    /// <summary>SIGTERM, wait up to <paramref name="grace"/>, then SIGKILL. True if it ended on SIGTERM.</summary>
    public static async Task<bool> TerminateAsync(int pid, TimeSpan grace)
    {
        if (!IsAlive(pid)) return true;
        Signal(pid, SIGTERM);
        if (await WaitExitAsync(pid, grace)) return true;
        Signal(pid, SIGKILL);
        await WaitExitAsync(pid, TimeSpan.FromSeconds(10));
        return false;
    }

    public static async Task<bool> WaitExitAsync(int pid, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (!IsAlive(pid)) return true;
            await Task.Delay(50);
        }
        return !IsAlive(pid);
    }

    /// <summary>Reads a pid file; 0 if missing or malformed.</summary>
    public static int ReadPidFile(string path)
    {
        try { return int.TryParse(File.ReadAllText(path).Trim(), out var pid) ? pid : 0; }
        catch (IOException) { return 0; }
    }

    /// <summary>The last <paramref name="lines"/> lines of a log file ("" if missing).</summary>
    public static string Tail(string path, int lines = 60)
    {
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var sr = new StreamReader(fs);
            var all = sr.ReadToEnd().Split('\n');
            return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
        }
        catch (IOException) { return ""; }
    }

    /// <summary>Polls <paramref name="condition"/> until true or the timeout passes.</summary>
    public static async Task<bool> Eventually(Func<bool> condition, TimeSpan timeout, TimeSpan? interval = null)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            if (condition()) return true;
            if (sw.Elapsed > timeout) return false;
            await Task.Delay(interval ?? TimeSpan.FromMilliseconds(100));
        }
    }

    public static async Task<bool> Eventually(Func<Task<bool>> condition, TimeSpan timeout, TimeSpan? interval = null)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            if (await condition()) return true;
            if (sw.Elapsed > timeout) return false;
            await Task.Delay(interval ?? TimeSpan.FromMilliseconds(100));
        }
    }
}
