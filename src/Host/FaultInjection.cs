using WhaleWall.Firewall.Nft;

namespace WhaleWall.Host;

/// <summary>For tests only, off unless <c>WHALEWALL_TEST_FAULTS=1</c>: lets an end-to-end test
/// make the kernel port misbehave in a running daemon, to prove that the writer heals itself.
/// Before each transaction the file <c>test-faults</c> in the data directory is read (and
/// deleted) if it exists; each line is a command:
/// <list type="bullet">
/// <item><c>throw N</c>: the next N transactions throw (an internal error in the writer).</item>
/// <item><c>refuse-deletes N</c>: the next N transactions that delete elements are refused.</item>
/// <item><c>delay MS</c>: every transaction from now on waits MS milliseconds first (0 stops it).</item>
/// </list></summary>
public sealed class FaultInjection(INftables inner, string controlFile) : INftables
{
    public const string Variable = "WHALEWALL_TEST_FAULTS";
    public const string FileName = "test-faults";

    private readonly object gate = new();
    private int throwLeft, refuseDeletesLeft, delayMs;

    public static INftables Wrap(INftables inner, string dataDir, Func<string, string?>? env = null) =>
        (env ?? Environment.GetEnvironmentVariable)(Variable) == "1"
            ? new FaultInjection(inner, Path.Combine(dataDir, FileName))
            : inner;

    public NftResult Run(string json)
    {
        int delay;
        lock (gate)
        {
            ReadCommands();
            delay = delayMs;
            if (throwLeft > 0)
            {
                throwLeft--;
                throw new InvalidOperationException("injected fault (WHALEWALL_TEST_FAULTS)");
            }
            if (refuseDeletesLeft > 0 && json.Contains("{\"delete\":{\"element\"", StringComparison.Ordinal))
            {
                refuseDeletesLeft--;
                return NftResult.Failure("Error: Could not process rule: No such file or directory (injected fault)");
            }
        }
        if (delay > 0) Thread.Sleep(delay);
        return inner.Run(json);
    }

    public NftResult Check(string json) => inner.Check(json);

    private void ReadCommands()
    {
        if (!File.Exists(controlFile)) return;
        string[] lines;
        try
        {
            lines = File.ReadAllLines(controlFile);
            File.Delete(controlFile);
        }
        catch (IOException) { return; }
        foreach (var line in lines)
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2 || !int.TryParse(parts[1], out var n) || n < 0) continue;
            switch (parts[0])
            {
                case "throw": throwLeft = n; break;
                case "refuse-deletes": refuseDeletesLeft = n; break;
                case "delay": delayMs = n; break;
            }
        }
    }
}
