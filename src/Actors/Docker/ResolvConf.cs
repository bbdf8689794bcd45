using System.Collections.Immutable;
using System.Net;
using System.Text.RegularExpressions;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Docker;

/// <summary>Reads the resolvers out of a container's resolv.conf as Docker writes it.</summary>
public static partial class ResolvConf
{
    public static ImmutableArray<IPAddress> Servers(string text)
    {
        var servers = new List<IPAddress>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.StartsWith("nameserver", StringComparison.Ordinal) &&
                line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries) is [_, var address, ..] &&
                Addresses.TryParse(address, out var ip) && !IPAddress.IsLoopback(ip))
                servers.Add(ip);
            else if (line.StartsWith("# ExtServers:", StringComparison.Ordinal))
                foreach (Match m in ExtServer().Matches(line))
                    if (Addresses.TryParse(m.Groups[1].Value, out var ext) && !IPAddress.IsLoopback(ext))
                        servers.Add(ext);
        }
        return [.. servers.Distinct()];
    }

    [GeneratedRegex(@"(?:host\()?([0-9a-fA-F:.]+)\)?")]
    private static partial Regex ExtServer();
}
