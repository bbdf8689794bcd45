using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.EndToEnd;

/// <summary>deploy/whalewall.service cannot run here (no systemd as pid 1), so it is checked with
/// `systemd-analyze verify`: unknown directives, bad values and unknown system-call groups are
/// reported there (that is how `@sandbox`, missing from systemd 252, was caught).</summary>
public sealed class SystemdUnitTests
{
    internal static string Unit()
    {
        var repo = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(repo, "WhaleWall.sln"))) repo = Path.GetDirectoryName(repo.TrimEnd('/'))!;
        return File.ReadAllText(Path.Combine(repo, "deploy", "whalewall.service"));
    }

    /// <summary>Every value of a directive, in order (systemd appends repeated list settings).</summary>
    internal static List<string> Values(string unit, string key) =>
        unit.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith(key + "=", StringComparison.Ordinal))
            .Select(l => l[(key.Length + 1)..]).ToList();

    [Fact]
    public void Unit_runs_the_daemon_as_a_user_of_its_own_with_the_socket_group_and_CAP_NET_ADMIN_only()
    {
        var unit = Unit();
        Assert.Equal(["whalewall"], Values(unit, "User"));
        Assert.Equal(["whalewall"], Values(unit, "Group"));
        Assert.Equal(["docker"], Values(unit, "SupplementaryGroups"));
        Assert.Equal(["CAP_NET_ADMIN"], Values(unit, "AmbientCapabilities"));
        Assert.Equal(["CAP_NET_ADMIN"], Values(unit, "CapabilityBoundingSet"));
        Assert.Equal(["yes"], Values(unit, "NoNewPrivileges"));
        // the data dir: systemd creates and chowns it, writable, and mounted noexec
        Assert.Equal(["whalewall"], Values(unit, "StateDirectory"));
        Assert.Contains("/var/lib/whalewall", Values(unit, "NoExecPaths").SelectMany(v => v.Split(' ')));
        Assert.Empty(Values(unit, "DynamicUser"));
    }

    [Fact]
    public void Unit_file_passes_systemd_analyze_verify()
    {
        var unit = Unit();
        Assert.Contains("ExecStart=/opt/whalewall/whalewall run", unit);

        var dir = Path.Combine(Path.GetTempPath(), "ww-unit-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(dir);
        try
        {
            // the binary is not installed under /opt here: point ExecStart at one that exists
            var path = Path.Combine(dir, "whalewall.service");
            File.WriteAllText(path, unit.Replace("ExecStart=/opt/whalewall/whalewall run", "ExecStart=/bin/true run"));
            var (code, stdout, stderr) = Shell.Try("systemd-analyze", "verify", path);
            Assert.True(code == 0 && stderr.Trim().Length == 0 && stdout.Trim().Length == 0,
                $"systemd-analyze verify exited {code}:\n{stdout}{stderr}");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
