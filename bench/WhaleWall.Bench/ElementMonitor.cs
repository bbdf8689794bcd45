using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace WhaleWall.Bench;

/// <summary>When an address enters or leaves the kernel: `nft monitor elements` in the daemon's
/// namespace. The kernel multicasts NEWSETELEM/DELSETELEM when a transaction commits, so the
/// time a line arrives here is the commit (plus a pipe hop), whatever the layout calls its sets:
/// any element of <paramref name="table"/> naming the address counts (the first add after the
/// event, the first delete after the removal).</summary>
public sealed partial class ElementMonitor : IDisposable
{
    public sealed record Seen(bool Added, long UnixNanos);

    private readonly Process process;
    private readonly ConcurrentDictionary<string, List<Seen>> byAddress = new();
    private readonly Thread reader;
    private readonly string table;
    public int Lines { get; private set; }

    private readonly StreamWriter? transcript;

    /// <param name="transcriptFile">every line nft printed, with the time it arrived (Unix ns)</param>
    public ElementMonitor(string nsPath, string table, string? transcriptFile = null)
    {
        this.table = table;
        transcript = transcriptFile is null ? null : new StreamWriter(transcriptFile) { AutoFlush = false };
        var psi = new ProcessStartInfo("nsenter")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // stdbuf: nft's stdout is a pipe here; each notification must arrive as it is printed
        foreach (var a in new[] { "--net=" + nsPath, "stdbuf", "-oL", "nft", "-j", "monitor", "elements" }) psi.ArgumentList.Add(a);
        process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start nft monitor");
        Cleanup.Register("nft monitor " + process.Id, Dispose);
        reader = new Thread(Read) { IsBackground = true, Name = "nft-monitor" };
        reader.Start();
        process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 } l) lock (errors) errors.Add(l); };
        process.BeginErrorReadLine();
    }

    private readonly List<string> errors = new();

    /// <summary>What nft said on stderr and how it ended, if it did (for the log).</summary>
    public string Problem
    {
        get
        {
            lock (errors)
                return (process.HasExited ? $"nft monitor exited ({process.ExitCode}) " : "") + string.Join("; ", errors.TakeLast(5));
        }
    }

    private void Read()
    {
        string? line;
        while ((line = process.StandardOutput.ReadLine()) is not null)
        {
            var now = Clock.UnixNanos();
            transcript?.WriteLine($"{now} {(line.Length > 400 ? line[..400] + "..." : line)}");
            var m = ElementLine().Match(line);
            if (!m.Success || m.Groups["table"].Value != table) continue;
            Lines++;
            var added = m.Groups["op"].Value == "add";
            foreach (Match a in Address().Matches(line[m.Length..]))
            {
                var list = byAddress.GetOrAdd(a.Value, _ => new List<Seen>());
                lock (list) list.Add(new Seen(added, now));
            }
        }
    }

    /// <summary>The first add (or delete) of <paramref name="address"/> at or after
    /// <paramref name="sinceUnixNanos"/>, waiting up to <paramref name="timeout"/>; null if none.</summary>
    public async Task<long?> WaitAsync(string address, bool added, long sinceUnixNanos, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (byAddress.TryGetValue(address, out var list))
                lock (list)
                    foreach (var s in list)
                        if (s.Added == added && s.UnixNanos >= sinceUnixNanos) return s.UnixNanos;
            if (deadline.Elapsed > timeout || process.HasExited) return null;
            await Task.Delay(2);
        }
    }

    // {"add": {"element": {"family": "inet", "table": "wwbench_1_d", "name": "managed4", "elem": {"set": ["198.18.10.2"]}}}}
    // (JSON: the text form prints concatenated interval elements from uninitialised memory in nft 1.0.6;
    // the JSON form leaves them out, and the bridge table of the same name is not the inet table)
    [GeneratedRegex(@"^\{""(?<op>add|delete)"": \{""element"": \{""family"": ""inet"", ""table"": ""(?<table>\w+)""")]
    private static partial Regex ElementLine();

    // an IPv4 address of the bench's range, not the start of a CIDR or a longer number
    [GeneratedRegex(@"(?<![\d.])198\.18\.\d{1,3}\.\d{1,3}(?![\d./])")]
    private static partial Regex Address();

    public void Dispose()
    {
        try
        {
            lock (process) { transcript?.Flush(); }
            if (!process.HasExited) WhaleWall.TestSupport.E2eProcess.Signal(process.Id, WhaleWall.TestSupport.E2eProcess.SIGTERM);
            process.WaitForExit(5000);
        }
        catch (InvalidOperationException) { }
    }
}
