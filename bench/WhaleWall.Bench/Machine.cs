using System.Runtime.InteropServices;

namespace WhaleWall.Bench;

/// <summary>One line about the machine the figures come from.</summary>
public static class Machine
{
    public static string Describe()
    {
        var cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? "?";
        var memKb = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
        var os = File.Exists("/etc/os-release")
            ? File.ReadLines("/etc/os-release").FirstOrDefault(l => l.StartsWith("PRETTY_NAME="))?.Split('=', 2)[1].Trim('"') ?? "?"
            : "?";
        var nft = Shell("dpkg-query", "-W", "-f=${Version}", "libnftables1");
        return $"{Environment.ProcessorCount} x {cpu}, {long.Parse(memKb) / 1024 / 1024.0:0} GiB, {os}, kernel {Environment.OSVersion.Version} ({RuntimeInformation.OSDescription.Split(' ').ElementAtOrDefault(2) ?? ""}), libnftables {nft}, .NET {Environment.Version}";
    }

    /// <summary>1-minute load average: other work on the machine shows up in every figure.</summary>
    public static string LoadAverage() => File.ReadAllText("/proc/loadavg").Split(' ')[0];

    private static string Shell(string file, params string[] args)
    {
        try { return WhaleWall.TestSupport.Shell.Try(file, args).Out.Trim(); }
        catch { return "?"; }
    }
}
