using System.Diagnostics;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Bench;

/// <summary>The real libnftables, with the duration of every transaction recorded (the
/// "kernel time": libnftables parsing the JSON, its cache, netlink and the kernel's commit).</summary>
public sealed class TimedNftables(INftables inner) : INftables
{
    private readonly List<double> durations = new();

    public NftResult Run(string json)
    {
        var sw = Stopwatch.StartNew();
        var result = inner.Run(json);
        var ms = sw.Elapsed.TotalMilliseconds;
        lock (durations) durations.Add(ms);
        if (!result.Ok) Console.Error.WriteLine($"wwbench: libnftables error: {result.Error}");
        return result;
    }

    public int Count { get { lock (durations) return durations.Count; } }

    /// <summary>Durations recorded since <paramref name="from"/> (a <see cref="Count"/> taken earlier).</summary>
    public List<double> Since(int from) { lock (durations) return durations.Skip(from).ToList(); }

    public NftResult Must(string json)
    {
        var r = Run(json);
        if (!r.Ok) throw new InvalidOperationException("libnftables: " + r.Error);
        return r;
    }
}
