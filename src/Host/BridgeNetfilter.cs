namespace WhaleWall.Host;

/// <summary>Containers on one bridge talk bridged; that traffic reaches the inet forward hook
/// only with br_netfilter and bridge-nf-call-ip(6)tables=1. Without them container-to-container
/// rules would be silently unenforced, so WhaleWall sets them when it can and says loudly
/// when it cannot.</summary>
public static class BridgeNetfilter
{
    private const string Dir = "/proc/sys/net/bridge";

    public static IReadOnlyList<string> Ensure()
    {
        var problems = new List<string>();
        foreach (var key in new[] { "bridge-nf-call-iptables", "bridge-nf-call-ip6tables" })
        {
            var path = Path.Combine(Dir, key);
            if (!File.Exists(path))
            {
                problems.Add($"{path} is missing (br_netfilter not loaded): traffic between containers on the same bridge is NOT filtered; run `modprobe br_netfilter`");
                continue;
            }
            if (File.ReadAllText(path).Trim() == "1") continue;
            try { File.WriteAllText(path, "1"); }
            catch (Exception e)
            {
                problems.Add($"cannot set {path} to 1 ({e.Message}): traffic between containers on the same bridge is NOT filtered");
            }
        }
        return problems;
    }
}
