namespace WhaleWall.Firewall.Dns;

/// <summary>A query rate: <see cref="PerSecond"/> sustained, <see cref="Burst"/> at once.</summary>
public sealed record RateLimit(double PerSecond, double Burst)
{
    public static readonly RateLimit Default = new(50, 100);
}

/// <summary>A token bucket per container (immutable, time passed in): each query takes one
/// token; tokens come back at the limit's rate up to its burst.</summary>
public readonly record struct TokenBucket(double Tokens, DateTimeOffset Last)
{
    public static TokenBucket Full(RateLimit limit, DateTimeOffset now) => new(limit.Burst, now);

    public (bool Allowed, TokenBucket Next) Take(RateLimit limit, DateTimeOffset now)
    {
        var elapsed = now > Last ? (now - Last).TotalSeconds : 0; // a clock going back refills nothing
        var tokens = Math.Min(limit.Burst, Tokens + elapsed * limit.PerSecond);
        return tokens >= 1
            ? (true, new TokenBucket(tokens - 1, now > Last ? now : Last))
            : (false, new TokenBucket(tokens, now > Last ? now : Last));
    }
}
