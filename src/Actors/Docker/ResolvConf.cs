using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Docker;

/// <summary>Reads the <c>nameserver</c> lines of a resolv.conf (the host's: a container's own file
/// is never read, the container can write it). Comments (<c>#</c>, <c>;</c>) and entries that are
/// not plain addresses (zone ids) are skipped.</summary>
public static class ResolvConf
{
    public static ImmutableArray<IPAddress> Nameservers(string text)
    {
        var servers = new List<IPAddress>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Split('#', ';')[0].Trim();
            if (line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries) is ["nameserver", var address, ..] &&
                Addresses.TryParse(address, out var ip))
                servers.Add(ip);
        }
        return [.. servers.Distinct()];
    }
}
