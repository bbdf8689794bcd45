using System.Net.Sockets;
using System.Text;
using WhaleWall.Actors.Docker;
using Xunit;

namespace WhaleWall.Tests.Docker;

/// <summary>The adapter against a minimal Docker API on a unix socket (HTTP/1.1, one request per
/// connection) whose container inspects answer slowly: how many are under way at once.</summary>
public sealed class DockerSourceInspectsTests : IDisposable
{
    private readonly string socketPath = Path.Combine(Path.GetTempPath(), $"ww-inspects-{Guid.NewGuid():N}.sock");
    private readonly Socket listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly CancellationTokenSource stop = new();
    private int inFlight;
    private int most;

    public DockerSourceInspectsTests()
    {
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1024);
        _ = Task.Run(AcceptAsync);
    }

    [Fact]
    public async Task A_start_with_many_containers_inspects_a_bounded_number_at_once()
    {
        using var docker = DockerSource.Connect("unix://" + socketPath);
        var all = Enumerable.Range(0, DockerSource.MaxInspects * 3)
            .Select(i => Task.Run(() => docker.InspectAsync($"c{i:D4}", CancellationToken.None)))
            .ToList();
        var facts = await Task.WhenAll(all).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.All(facts, f => Assert.NotNull(f));
        Assert.InRange(most, 1, DockerSource.MaxInspects);
    }

    private async Task AcceptAsync()
    {
        while (!stop.IsCancellationRequested)
        {
            Socket client;
            try { client = await listener.AcceptAsync(stop.Token); }
            catch (Exception) { return; }
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using var _ = client;
        await using var stream = new NetworkStream(client);
        var head = new StringBuilder();
        var buffer = new byte[4096];
        while (!head.ToString().Contains("\r\n\r\n"))
        {
            var n = await stream.ReadAsync(buffer);
            if (n == 0) return;
            head.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
        var path = head.ToString().Split(' ')[1];
        string body;
        if (path.Contains("/containers/") && path.EndsWith("/json"))
        {
            var now = Interlocked.Increment(ref inFlight);
            InterlockedMax(ref most, now);
            await Task.Delay(50);
            Interlocked.Decrement(ref inFlight);
            var id = path.Split('/')[^2];
            body = "{\"Id\":\"" + id + "\",\"Name\":\"/" + id +
                   "\",\"State\":{\"Running\":false},\"Config\":{\"Labels\":{}},\"HostConfig\":{},\"NetworkSettings\":{\"Networks\":{}}}";
        }
        else body = """{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12"}""";
        var bytes = Encoding.UTF8.GetBytes(body);
        var response = $"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\nContent-Length: {bytes.Length}\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(response));
        await stream.WriteAsync(bytes);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }

    public void Dispose()
    {
        stop.Cancel();
        listener.Dispose();
        File.Delete(socketPath);
    }
}
