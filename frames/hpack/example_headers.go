package hpack

// BrowserRequestFields is a representative browser request header list, used
// by tests and benchmarks: a Chrome top-level navigation (GET) with the
// client hints, fetch metadata and a login cookie of about 200 bytes.
var BrowserRequestFields = []struct{ Name, Value string }{
	{":method", "GET"},
	{":authority", "shop.example.com"},
	{":scheme", "https"},
	{":path", "/catalog/widgets?page=2&sort=price"},
	{"sec-ch-ua", `"Chromium";v="128", "Not;A=Brand";v="24", "Google Chrome";v="128"`},
	{"sec-ch-ua-mobile", "?0"},
	{"sec-ch-ua-platform", `"Windows"`},
	{"upgrade-insecure-requests", "1"},
	{"user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36"},
	{"accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"},
	{"sec-fetch-site", "same-origin"},
	{"sec-fetch-mode", "navigate"},
	{"sec-fetch-dest", "document"},
	{"referer", "https://shop.example.com/catalog/widgets"},
	{"accept-encoding", "gzip, deflate, br, zstd"},
	{"accept-language", "en-US,en;q=0.9,de;q=0.8"},
	{"cookie", "sid=8f3c2a9e41d07b65c1e2f3a4b5c6d7e8; csrftoken=Xy7Qp2LmN9vR4tK8wZ3sD6fG1hJ5kB0c; _ga=GA1.2.1234567890.1712345678; _gid=GA1.2.987654321.1712345678; theme=dark; cart=3f9a7c21; lang=en-US; consent=analytics%3Dfalse"},
}
