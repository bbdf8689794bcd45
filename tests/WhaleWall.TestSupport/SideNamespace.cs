namespace WhaleWall.TestSupport;

/// <summary>An empty network namespace of the test's own (<c>&lt;run id&gt;-&lt;suffix&gt;</c>)
/// for a second daemon whose table must not filter the containers' traffic: its table is
/// compared, never in the packets' path. Deleted (with its tables) on dispose.</summary>
public sealed class SideNamespace : IDisposable
{
    public string Name { get; }
    public string Path => Netns.Named(Name);

    public SideNamespace(DockerHarness h, string suffix)
    {
        Name = $"{h.RunId}-{suffix}";
        Shell.Run("ip", "netns", "add", Name);
        Shell.Run("ip", "-n", Name, "link", "set", "lo", "up");
        Shell.Run("ip", "-n", Name, "route", "add", "blackhole", TestNet.Supernet4, "metric", TestNet.BlackholeMetric.ToString());
        Shell.Try("ip", "-n", Name, "-6", "route", "add", "blackhole", TestNet.Supernet6, "metric", TestNet.BlackholeMetric.ToString());
    }

    public void Dispose() => Shell.Try("ip", "netns", "del", Name);
}
