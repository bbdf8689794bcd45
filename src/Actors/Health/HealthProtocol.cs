namespace WhaleWall.Actors.Health;

/// <summary>Published on the event stream by each part of the daemon whose failure makes the
/// firewall untrustworthy; `/healthz` answers 503 while any component has a problem.</summary>
public static class HealthNotices
{
    /// <summary>Components that report: the writer (stuck, retrying), the store (failing past its
    /// grace), bridge netfilter (bridge-nf-call-ip(6)tables off), the sandbox (missing), binding (no bridge family).</summary>
    public static class Components
    {
        public const string Writer = "writer";
        public const string Store = "store";
        public const string BridgeNetfilter = "bridge-netfilter";
        public const string Sandbox = "sandbox";
        public const string Binding = "binding";
    }

    /// <summary><paramref name="Problem"/> null: the component is healthy (again).</summary>
    public sealed record ComponentHealth(string Component, string? Problem);
}
