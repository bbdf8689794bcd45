using System.Net.Sockets;
using System.Text;
using Docker.DotNet;
using WhaleWall.Actors.Docker;
using Xunit;

namespace WhaleWall.Tests.Docker;

/// <summary>The adapter against a minimal Docker API on a unix socket (HTTP/1.1, one request per
/// connection) whose container inspects answer slowly (how many are under way at once) or, for
/// containers named <c>stuck…</c>, never.</summary>
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

    [Fact]
    public async Task Inspects_that_dockerd_never_answers_time_out_and_give_their_place_to_the_next()
    {
        using var docker = new DockerSource(new DockerClientBuilder().WithEndpoint(new Uri("unix://" + socketPath)).Build())
        {
            InspectTimeout = TimeSpan.FromSeconds(1),
        };
        // every place taken by a container whose start never finishes (dockerd holds its lock)
        var stuck = Enumerable.Range(0, DockerSource.MaxInspects)
            .Select(i => Task.Run(() => docker.InspectAsync($"stuck{i:D4}", CancellationToken.None)))
            .ToList();
        var next = Task.Run(() => docker.InspectAsync("c0001", CancellationToken.None));

        var facts = await next.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("c0001", facts!.Id);
        foreach (var s in stuck)
        {
            var e = await Assert.ThrowsAsync<TimeoutException>(() => s.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Contains("did not answer within 1 s", e.Message);
        }
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
        if (path.Contains("/containers/stuck"))
        {
            try { await Task.Delay(Timeout.Infinite, stop.Token); } catch (OperationCanceledException) { }
            return;
        }
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
