using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.EndToEnd;

/// <summary>deploy/whalewall.service cannot run here (no systemd as pid 1), so it is checked with
/// `systemd-analyze verify`: unknown directives, bad values and unknown system-call groups are
/// reported there (that is how `@sandbox`, missing from systemd 252, was caught).</summary>
public sealed class SystemdUnitTests
{
    [Fact]
    public void Unit_file_passes_systemd_analyze_verify()
    {
        var repo = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(repo, "WhaleWall.sln"))) repo = Path.GetDirectoryName(repo.TrimEnd('/'))!;
        var unit = File.ReadAllText(Path.Combine(repo, "deploy", "whalewall.service"));
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
