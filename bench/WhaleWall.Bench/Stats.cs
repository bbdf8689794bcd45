namespace WhaleWall.Bench;

/// <summary>Percentiles of a sample (nearest rank).</summary>
public static class Stats
{
    public static double Percentile(IReadOnlyCollection<double> values, double p)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToArray();
        var rank = (int)Math.Ceiling(p / 100.0 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    public static double Median(IReadOnlyCollection<double> values) => Percentile(values, 50);

    public static string Ms(double ms) => double.IsNaN(ms) ? "n/a" : ms < 10 ? $"{ms:0.00} ms" : $"{ms:0.0} ms";

    public static string P50P99(IReadOnlyCollection<double> ms) =>
        $"p50 {Ms(Percentile(ms, 50))}, p99 {Ms(Percentile(ms, 99))} (n={ms.Count})";
}
