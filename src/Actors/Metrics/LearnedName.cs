namespace WhaleWall.Actors.Metrics;

/// <summary>An address a container's own DNS lookup of <paramref name="Name"/> opened through the
/// DNS proxy, in the kernel until <paramref name="Expires"/> (TTL + grace).</summary>
public sealed record LearnedName(string Name, string Address, DateTimeOffset Expires);
