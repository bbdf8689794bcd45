using System.Diagnostics;
using System.Text;

namespace WhaleWall.TestSupport;

/// <summary>A child process run to completion under a time limit, with its peak resident
/// memory sampled from /proc while it runs: for work that could crash (a stack overflow kills
/// the whole process), hang or exhaust memory if done inside the test host.</summary>
public sealed record ChildOutcome(int? ExitCode, bool TimedOut, long PeakRssKiB, TimeSpan Cpu, TimeSpan Elapsed, string Output)
{
    /// <summary>.NET aborts with SIGABRT (exit 134) on a stack overflow.</summary>
    public bool Aborted => ExitCode == 134;

    public override string ToString() =>
        $"{(TimedOut ? "timed out" : ExitCode is null ? "killed" : $"exit {ExitCode}")} after {Elapsed.TotalSeconds:F1} s " +
        $"({Cpu.TotalSeconds:F1} s CPU), peak RSS {PeakRssKiB / 1024} MiB";
}

public static class ChildRun
{
    /// <summary>Runs <paramref name="file"/>; past <paramref name="timeout"/> or
    /// <paramref name="maxRssKiB"/> resident it is killed (and reported as timed out or by its
    /// RSS). <paramref name="stackKiB"/>: the main thread's stack (<c>ulimit -s</c>), e.g. the
    /// 1.5 MiB of a .NET worker thread, where a daemon does the same work.</summary>
    public static ChildOutcome Run(TimeSpan timeout, long maxRssKiB, int? stackKiB, string file, params string[] args)
    {
        if (stackKiB is { } stack)
        {
            args = ["-c", $"ulimit -s {stack} && exec \"$0\" \"$@\"", file, .. args];
            file = "/bin/sh";
        }
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        p.StandardInput.Close();
        var output = new StringBuilder();
        void Append(string? line) { if (line is not null) lock (output) output.AppendLine(line); }
        p.OutputDataReceived += (_, e) => Append(e.Data);
        p.ErrorDataReceived += (_, e) => Append(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        long peak = 0;
        var cpu = TimeSpan.Zero;
        var timedOut = false;
        while (!p.WaitForExit(20))
        {
            peak = Math.Max(peak, PeakRss(p.Id));
            cpu = Max(cpu, CpuTime(p.Id));
            if (sw.Elapsed > timeout || peak > maxRssKiB)
            {
                timedOut = sw.Elapsed > timeout;
                E2eProcess.Signal(p.Id, E2eProcess.SIGKILL);
                p.WaitForExit(5000);
                break;
            }
        }
        p.WaitForExit();
        string text;
        lock (output) text = output.ToString();
        var killed = timedOut || peak > maxRssKiB;
        return new ChildOutcome(killed ? null : p.ExitCode, timedOut, peak, cpu, sw.Elapsed, text);
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    /// <summary>User + system CPU time of a running process (sampled: the last 20 ms before it
    /// exits are not seen).</summary>
    public static TimeSpan CpuTime(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // fields after the command: state is [0], utime [11], stime [12], in clock ticks (100 Hz)
            return TimeSpan.FromMilliseconds((long.Parse(fields[11]) + long.Parse(fields[12])) * 10);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return TimeSpan.Zero;
        }
    }

    /// <summary>VmHWM of a running process in KiB (0 once it is gone).</summary>
    public static long PeakRss(int pid) => StatusField(pid, "VmHWM:");

    /// <summary>VmRSS of a running process in KiB (0 once it is gone).</summary>
    public static long Rss(int pid) => StatusField(pid, "VmRSS:");

    private static long StatusField(int pid, string field)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                if (line.StartsWith(field, StringComparison.Ordinal))
                    return long.Parse(line[field.Length..].Trim().Split(' ')[0]);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return 0;
    }
}
