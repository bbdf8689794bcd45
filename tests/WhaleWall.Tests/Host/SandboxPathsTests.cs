using WhaleWall.Host.Sandbox;
using Xunit;

namespace WhaleWall.Tests.Host;

public sealed class SandboxPathsTests
{
    [Fact]
    public void The_data_dir_is_writable_but_not_executable()
    {
        var rules = SandboxPaths.For("/var/lib/whalewall", "unix:///var/run/docker.sock");
        var (_, access) = Assert.Single(rules, r => r.Path == "/var/lib/whalewall");
        Assert.Equal(Landlock.WriteFile, access & Landlock.WriteFile);
        Assert.Equal(0UL, access & Landlock.Execute);
        Assert.Empty(SandboxPaths.ExecutableAbove("/var/lib/whalewall", rules));
    }

    [Fact]
    public void Nothing_writable_is_executable()
    {
        var rules = SandboxPaths.For("/var/lib/whalewall", "unix:///var/run/docker.sock");
        Assert.All(rules.Where(r => (r.Access & (Landlock.WriteFile | Landlock.MakeReg)) != 0),
            r => Assert.True((r.Access & Landlock.Execute) == 0, $"{r.Path} is writable and executable"));
    }

    [Theory]
    [InlineData("/opt/whalewall/data", "/opt/whalewall")]
    [InlineData("/usr/local/whalewall/", "/usr")]
    [InlineData("/etc/whalewall", "/etc")]
    public void A_data_dir_beneath_an_executable_rule_is_reported(string dataDir, string above)
    {
        var rules = SandboxPaths.For(dataDir, "unix:///var/run/docker.sock").Append(("/opt/whalewall", Landlock.ReadOnly)).ToList();
        Assert.Contains(above, SandboxPaths.ExecutableAbove(dataDir, rules));
    }

    [Fact]
    public void A_sibling_with_a_common_prefix_is_not_beneath()
    {
        var rules = new List<(string, ulong)> { ("/opt/whale", Landlock.ReadOnly) };
        Assert.Empty(SandboxPaths.ExecutableAbove("/opt/whalewall", rules));
    }
}
