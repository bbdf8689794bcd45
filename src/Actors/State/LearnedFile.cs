using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Dns;

namespace WhaleWall.Actors.State;

/// <summary><c>learned.json</c> in the data directory: what the DNS proxy taught each container,
/// kept across a daemon restart (docs/dns-proxy.md "Restart"). Written atomically (temp file +
/// rename, like <c>daemon.json</c>); read once at start-up, where a file that cannot be read or
/// is not what WhaleWall writes is ignored with a warning (the daemon then starts as if it had
/// never learned anything: addresses are learned again at the containers' next lookups).</summary>
public sealed class LearnedFile(string path)
{
    public const string FileName = "learned.json";

    public string Path => path;

    public LearnedSnapshot.Parsed Read(DateTimeOffset now, TimeSpan maxTimeout, int perContainer)
    {
        try
        {
            if (!File.Exists(path)) return new(LearnedSnapshot.None, [], 0);
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            if (stream.Length > LearnedSnapshot.MaxBytes) return new(LearnedSnapshot.None, [$"ignored: larger than {LearnedSnapshot.MaxBytes} bytes"], 0);
            var bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
            return LearnedSnapshot.Parse(bytes, now, maxTimeout, perContainer);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new(LearnedSnapshot.None, [$"ignored: cannot read it ({e.Message})"], 0);
        }
    }

    public void Write(IEnumerable<KeyValuePair<string, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>>> containers, DateTimeOffset now)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        var temp = path + ".tmp";
        File.WriteAllBytes(temp, LearnedSnapshot.ToJson(containers, now));
        File.Move(temp, path, overwrite: true);
    }
}
