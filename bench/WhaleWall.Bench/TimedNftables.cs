using System.Diagnostics;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Bench;

/// <summary>The real libnftables, with the duration of every transaction recorded (the
/// "kernel time": libnftables parsing the JSON, its cache, netlink and the kernel's commit).</summary>
public sealed class TimedNftables(INftables inner) : INftables
{
    private readonly List<double> durations = new();
    private readonly List<bool> withDeletes = new();

    public NftResult Run(string json)
    {
        var sw = Stopwatch.StartNew();
        var result = inner.Run(json);
        var ms = sw.Elapsed.TotalMilliseconds;
        lock (durations)
        {
            durations.Add(ms);
            withDeletes.Add(json.Contains("{\"delete\":{\"element\"", StringComparison.Ordinal));
        }
        if (!result.Ok) Console.Error.WriteLine($"wwbench: libnftables error: {result.Error}");
        return result;
    }

    public NftResult Check(string json) => inner.Check(json);

    public int Count { get { lock (durations) return durations.Count; } }

    /// <summary>Durations recorded since <paramref name="from"/> (a <see cref="Count"/> taken earlier).</summary>
    public List<double> Since(int from) { lock (durations) return durations.Skip(from).ToList(); }

    /// <summary>Like <see cref="Since"/>, split into transactions that delete elements and those that only add.</summary>
    public (List<double> WithDeletes, List<double> AddsOnly) SinceSplit(int from)
    {
        lock (durations)
        {
            var d = new List<double>();
            var a = new List<double>();
            for (var i = from; i < durations.Count; i++) (withDeletes[i] ? d : a).Add(durations[i]);
            return (d, a);
        }
    }

    public NftResult Must(string json)
    {
        var r = Run(json);
        if (!r.Ok) throw new InvalidOperationException("libnftables: " + r.Error);
        return r;
    }
}
