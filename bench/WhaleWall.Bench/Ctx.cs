using System.Diagnostics;
using Akka.Actor;
using WhaleWall.Firewall.Kernel;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Bench;

/// <summary>What every section shares: the mode, the bench's own table in the host namespace
/// (the namespace the bench runs in), the timed libnftables binding, the report.</summary>
public sealed class Ctx
{
    private readonly Stopwatch clock = Stopwatch.StartNew();

    public Ctx(bool isShort, TimedNftables nft)
    {
        Short = isShort;
        Nft = nft;
    }

    public bool Short { get; }
    public int Pid { get; } = Environment.ProcessId;
    /// <summary>The bench's own table; no other table is ever touched.</summary>
    public string Table => $"wwbench_{Pid}";
    /// <summary>Prefix of the namespaces the bench creates (fits veth names of 15 characters).</summary>
    public string NsPrefix => $"wwb{Pid}";
    public TimedNftables Nft { get; }
    public Report Report { get; } = new();
    public string ArtifactsDir { get; set; } = Directory.GetCurrentDirectory();

    public void Log(string message) => Console.WriteLine($"[{clock.Elapsed.TotalSeconds,7:0.0}s] {message}");

    /// <summary>Removes the bench's table (and only it); "from nothing" starts here.</summary>
    public void DropTable() => Nft.Must(NftJson.DeleteTable(Table));

    public static void DropTableWithFreshContext(string table)
    {
        using var nft = new LibNftables();
        var r = nft.Run(NftJson.DeleteTable(table));
        if (!r.Ok) throw new InvalidOperationException(r.Error);
    }

    public static ActorSystem NewActorSystem(string name) => ActorSystem.Create(name,
        "akka.loglevel = " + (Environment.GetEnvironmentVariable("WWBENCH_AKKA_LOG") ?? "WARNING") + "\nakka.stdout-loglevel = WARNING\n" +
        WhaleWall.Actors.Nft.NftWriterActor.DispatcherId + " { type = PinnedDispatcher }\n");

    public static long RssBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return 0;
    }

    public static long RssBytesOf(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return 0;
    }

    public static string Mb(long bytes) => $"{bytes / 1048576.0:0.0} MB";
}
