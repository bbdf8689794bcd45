using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace WhaleWall.TestSupport;

/// <summary>
/// A real Prometheus (Debian's <c>prometheus</c> package, installed by scripts/install-deps.sh
/// with its service off) started by a test inside a network namespace of the test's own:
/// its own config and data dir under <paramref name="parentDir"/>, the web API on 127.0.0.1 and a
/// free port of that namespace, stdout/stderr to files, scraping <paramref name="target"/> every
/// second. Disposing ends it by pid and removes its directory. Its pid file is
/// <c>&lt;parentDir&gt;/prometheus.pid</c>, which scripts/test.sh sweeps if the test process dies.
/// </summary>
public sealed class PrometheusServer : IAsyncDisposable
{
    public const string Binary = "/usr/bin/prometheus";
    public static readonly TimeSpan ScrapeInterval = TimeSpan.FromSeconds(1);

    public string NsPath { get; }
    public string Dir { get; }
    public string Address { get; }
    public string StdoutFile => Path.Combine(Dir, "stdout.log");
    public string StderrFile => Path.Combine(Dir, "stderr.log");
    public string PidFile { get; }
    public int Pid { get; }

    private PrometheusServer(string nsPath, string dir, string address, string pidFile, int pid)
    {
        NsPath = nsPath;
        Dir = dir;
        Address = address;
        PidFile = pidFile;
        Pid = pid;
    }

    /// <summary>Starts Prometheus in <paramref name="nsPath"/> scraping
    /// <paramref name="target"/> (host:port, path /metrics, job "whalewall") and waits (bounded)
    /// until its /-/ready answers 200.</summary>
    public static async Task<PrometheusServer> StartAsync(string nsPath, string parentDir, string target, TimeSpan? readyWithin = null)
    {
        if (!File.Exists(Binary))
            throw new FileNotFoundException($"{Binary} is missing: run scripts/install-deps.sh (Debian package 'prometheus')");
        var dir = Path.Combine(parentDir, "prometheus-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(dir, "data"));
        var config = Path.Combine(dir, "prometheus.yml");
        File.WriteAllText(config, $"""
            global:
              scrape_interval: {ScrapeInterval.TotalSeconds:F0}s
              scrape_timeout: {ScrapeInterval.TotalSeconds:F0}s
              evaluation_interval: {ScrapeInterval.TotalSeconds:F0}s
            scrape_configs:
              - job_name: whalewall
                metrics_path: /metrics
                static_configs:
                  - targets: ["{target}"]
            """);
        var port = FreeLoopbackPort(nsPath);
        var address = $"127.0.0.1:{port}";
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardInput = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$@\" </dev/null >\"$P_OUT\" 2>\"$P_ERR\"");
        psi.ArgumentList.Add("sh");
        foreach (var a in new[]
                 {
                     "nsenter", "--net=" + nsPath, Binary,
                     "--config.file=" + config,
                     "--storage.tsdb.path=" + Path.Combine(dir, "data"),
                     "--web.listen-address=" + address,
                     "--storage.tsdb.retention.time=1h",
                 })
            psi.ArgumentList.Add(a);
        psi.Environment["P_OUT"] = Path.Combine(dir, "stdout.log");
        psi.Environment["P_ERR"] = Path.Combine(dir, "stderr.log");
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start prometheus");
        var pidFile = Path.Combine(parentDir, "prometheus.pid");
        File.WriteAllText(pidFile, process.Id + "\n");
        var server = new PrometheusServer(nsPath, dir, address, pidFile, process.Id);
        try
        {
            var ready = await E2eProcess.Eventually(async () =>
            {
                if (!E2eProcess.IsAlive(server.Pid)) return true;
                try { return (await server.GetAsync("/-/ready")).Status == 200; }
                catch (Exception e) when (e is HttpRequestException or SocketException or TaskCanceledException or IOException) { return false; }
            }, readyWithin ?? TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(200));
            if (!E2eProcess.IsAlive(server.Pid))
                throw new InvalidOperationException($"prometheus exited at start:\n{E2eProcess.Tail(server.StderrFile, 30)}");
            if (!ready)
                throw new TimeoutException($"prometheus not ready at {address}:\n{E2eProcess.Tail(server.StderrFile, 30)}");
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public Task<(int Status, string Body)> GetAsync(string pathAndQuery) =>
        MetricsScrape.GetAsync(NsPath, Address, pathAndQuery, TimeSpan.FromSeconds(10));

    /// <summary>An instant query through /api/v1/query: the result's series (labels and value
    /// as text, "NaN" included), or the API's error.</summary>
    public async Task<PromQueryResult> QueryAsync(string expr)
    {
        var (status, body) = await GetAsync("/api/v1/query?query=" + Uri.EscapeDataString(expr));
        using var doc = JsonDocument.Parse(body);
        var root = doc.RootElement;
        if (status != 200 || root.GetProperty("status").GetString() != "success")
            return new PromQueryResult([], $"{status} {(root.TryGetProperty("error", out var e) ? e.GetString() : body)}");
        var data = root.GetProperty("data");
        var type = data.GetProperty("resultType").GetString();
        var series = new List<PromSeries>();
        if (type is "vector" or "matrix")
            foreach (var s in data.GetProperty("result").EnumerateArray())
            {
                var labels = s.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "");
                var value = s.TryGetProperty("value", out var v) ? v[1].GetString() ?? "" : "";
                series.Add(new PromSeries(labels, value));
            }
        else if (type == "scalar")
            series.Add(new PromSeries(new Dictionary<string, string>(), data.GetProperty("result")[1].GetString() ?? ""));
        return new PromQueryResult(series, null);
    }

    /// <summary>Values of <paramref name="label"/> among series matching
    /// <paramref name="selector"/> in the last <paramref name="window"/> (what Grafana's
    /// <c>label_values(selector, label)</c> asks).</summary>
    public async Task<List<string>> LabelValuesAsync(string label, string selector, TimeSpan window)
    {
        var end = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var start = end - (long)window.TotalSeconds;
        var (status, body) = await GetAsync($"/api/v1/label/{Uri.EscapeDataString(label)}/values?match[]={Uri.EscapeDataString(selector)}&start={start}&end={end}");
        if (status != 200) throw new InvalidOperationException($"label values {label} of {selector}: {status} {body}");
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("data").EnumerateArray().Select(v => v.GetString() ?? "").ToList();
    }

    private static int FreeLoopbackPort(string nsPath) => Netns.Run(nsPath, () =>
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    });

    public async ValueTask DisposeAsync()
    {
        await E2eProcess.TerminateAsync(Pid, TimeSpan.FromSeconds(10));
        try { File.Delete(PidFile); } catch (IOException) { }
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

public sealed record PromSeries(IReadOnlyDictionary<string, string> Labels, string Value);

public sealed record PromQueryResult(IReadOnlyList<PromSeries> Series, string? Error);
