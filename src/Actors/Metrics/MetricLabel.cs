using WhaleWall.Firewall;

namespace WhaleWall.Actors.Metrics;

/// <summary>Label values of the per-container series come from the container (its name, image,
/// compose labels): whoever creates containers chooses them. Each is held to
/// <see cref="MaxLength"/> characters (then <see cref="SafeText.Cut"/>) and escaped, so that a
/// hostile value cannot blow up every scrape or a dashboard.</summary>
public static class MetricLabel
{
    public const int MaxLength = 128;

    public static string Bound(string? value) => SafeText.Escape(value, MaxLength);
}
