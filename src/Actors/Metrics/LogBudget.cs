namespace WhaleWall.Actors.Metrics;

/// <summary>At most <paramref name="burst"/> log lines per <paramref name="window"/>: a source
/// that can make the daemon log as fast as it likes (a container's queries or flows) cannot
/// flood the log. The lines held back are counted and reported once their window has ended.
/// Not thread-safe: callers that log from several threads hold a lock around it.</summary>
public sealed class LogBudget(int burst, TimeSpan window)
{
    private DateTimeOffset start = DateTimeOffset.MinValue;
    private int logged, suppressed;

    /// <summary>True when the line at <paramref name="now"/> may be logged.
    /// <paramref name="heldBack"/>: the lines held back in the window that just ended (0 when none ended, or none were).</summary>
    public bool Admit(DateTimeOffset now, out int heldBack)
    {
        heldBack = 0;
        if (now - start >= window)
        {
            heldBack = suppressed;
            start = now;
            logged = suppressed = 0;
        }
        if (logged >= burst)
        {
            suppressed++;
            return false;
        }
        logged++;
        return true;
    }
}
