using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace WhaleWall.TestSupport;

/// <summary>One sample of a Prometheus text exposition.</summary>
public sealed record PromSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>HTTP GET of the daemon's metrics endpoint from inside a network namespace: the
/// connection's socket is created on a thread that entered the namespace, so it lives there.</summary>
public static class MetricsScrape
{
    public static async Task<(int Status, string Body)> GetAsync(string nsPath, string address, string path, TimeSpan? timeout = null)
    {
        var endpoint = IPEndPoint.Parse(address);
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = Netns.Run(nsPath, () => new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
                try
                {
                    await socket.ConnectAsync(endpoint, ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        using var client = new HttpClient(handler) { Timeout = timeout ?? TimeSpan.FromSeconds(10) };
        using var response = await client.GetAsync($"http://{address}{path}");
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static readonly Regex Line = new(@"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$", RegexOptions.Compiled);
    private static readonly Regex Label = new(@"([a-zA-Z_][a-zA-Z0-9_]*)=""((?:[^""\\]|\\.)*)""", RegexOptions.Compiled);

    public static List<PromSample> Parse(string text)
    {
        var samples = new List<PromSample>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var m = Line.Match(line);
            if (!m.Success) continue;
            var labels = new Dictionary<string, string>();
            foreach (Match l in Label.Matches(m.Groups[3].Value)) labels[l.Groups[1].Value] = Regex.Unescape(l.Groups[2].Value);
            var value = m.Groups[4].Value switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                var v => double.Parse(v, CultureInfo.InvariantCulture),
            };
            samples.Add(new PromSample(m.Groups[1].Value, labels, value));
        }
        return samples;
    }

    /// <summary>The value of the one sample with this name and these labels (0 when absent).</summary>
    public static double Value(this IEnumerable<PromSample> samples, string name, params (string Key, string Value)[] labels) =>
        samples.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Key, out var v) && v == l.Value))
            .Sum(s => s.Value);
}
