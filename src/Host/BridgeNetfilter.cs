namespace WhaleWall.Host;

/// <summary>Containers on one bridge talk bridged; that traffic reaches the inet forward hook
/// only with br_netfilter and bridge-nf-call-ip(6)tables=1. Without them container-to-container
/// rules would be silently unenforced, so WhaleWall sets them when it can, says loudly when it
/// cannot, and checks again every <see cref="RecheckEvery"/> (a later <c>modprobe -r br_netfilter</c>
/// or <c>sysctl -w ...=0</c> un-enforces them just as silently): what it cannot repair is a
/// problem in <c>/healthz</c>. The settings are per network namespace (kernel 6.18 here): the
/// daemon checks those of the namespace it runs in.</summary>
public static class BridgeNetfilter
{
    public const string Dir = "/proc/sys/net/bridge";
    public static readonly TimeSpan RecheckEvery = TimeSpan.FromSeconds(5);

    private static readonly string[] Keys = ["bridge-nf-call-iptables", "bridge-nf-call-ip6tables"];

    /// <summary>What is wrong and could not be repaired (empty: all good), and what was off and
    /// has just been set to 1.</summary>
    public sealed record Result(IReadOnlyList<string> Problems, IReadOnlyList<string> Repaired)
    {
        public string? Problem => Problems.Count == 0 ? null : string.Join("; ", Problems);
    }

    public static Result Ensure(string dir = Dir)
    {
        var problems = new List<string>();
        var repaired = new List<string>();
        foreach (var key in Keys)
        {
            var path = Path.Combine(dir, key);
            string value;
            try { value = File.ReadAllText(path).Trim(); }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                problems.Add($"{path} is missing (br_netfilter not loaded): traffic between containers on the same bridge is NOT filtered; run `modprobe br_netfilter`");
                continue;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problems.Add($"cannot read {path} ({e.Message}): whether traffic between containers on the same bridge is filtered is unknown");
                continue;
            }
            if (value == "1") continue;
            try
            {
                File.WriteAllText(path, "1");
                repaired.Add($"{path} was {Shown(value)}; set it to 1 (traffic between containers on the same bridge was not filtered meanwhile)");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problems.Add($"{path} is {Shown(value)} and cannot be set to 1 ({e.Message}): traffic between containers on the same bridge is NOT filtered");
            }
        }
        return new Result(problems, repaired);
    }

    private static string Shown(string value) => value.Length is > 0 and <= 8 && value.All(char.IsAsciiDigit) ? value : "not 0 or 1";
}
