//! A thin W3C WebDriver client for the browser tests (`tests/browser.rs`): it starts its own
//! `chromedriver`, opens one headless Chromium session, and speaks the protocol's JSON over
//! the suite's reqwest. Only the commands the tests use are here; each panics with the
//! driver's own error, which is how a test should fail.
//!
//! Chromium and its driver come from the system (Debian: `apt-get install chromium
//! chromium-driver`); `CHROMEDRIVER` and `CHROME` point at other binaries.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// The key W3C WebDriver names an element reference by.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a driver may take to answer `/status` on a loaded machine.
const DRIVER_START: Duration = Duration::from_secs(30);
/// A whole page load or script, on a loaded machine.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What the tests type besides text (W3C WebDriver's key codes).
pub mod keys {
    pub const TAB: &str = "\u{E004}";
}

/// The browser's window; screenshots are its page area (the same width, a little shorter).
pub const WINDOW: (u32, u32) = (1280, 800);

const INSTALL_HINT: &str = "install Chromium and its WebDriver (README, \"Browser tests\"): \
Debian `sudo apt-get install chromium chromium-driver`; Ubuntu `sudo snap install chromium` and \
CHROMEDRIVER=/snap/bin/chromium.chromedriver; macOS `brew install --cask chromium chromedriver`; \
or point CHROMEDRIVER= (and CHROME=) at the binaries";

/// A `chromedriver` process of this test's own, on a free port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(http: &reqwest::Client) -> Self {
        let program = executable("CHROMEDRIVER", &["chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver was not found: {INSTALL_HINT}"));
        // A port the OS just handed out and released; chromedriver binds it at once.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free local port")
            .port();
        let child = Command::new(&program)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{} did not start ({e}): {INSTALL_HINT}", program.display())
            });
        let mut driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + DRIVER_START;
        loop {
            let ready = http.get(format!("{}/status", driver.url)).send().await;
            if let Ok(resp) = ready {
                let status: Value = resp.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    return driver;
                }
            }
            if let Ok(Some(exit)) = driver.child.try_wait() {
                panic!("{} exited at start ({exit})", program.display());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on port {port} in {DRIVER_START:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium window. Dropping it closes the browser and stops its driver, also
/// when a test panics.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    // Dropped after `drop` below has ended the session.
    driver: Driver,
}

/// An element of the page as it was when found.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

/// What the driver answered when a command failed.
#[derive(Debug)]
pub struct WebDriverError {
    pub error: String,
    pub message: String,
}

impl Browser {
    /// Starts a driver and a headless Chromium session in a [`WINDOW`]-sized window.
    pub async fn start() -> Self {
        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .expect("an HTTP client");
        let driver = Driver::start(&http).await;
        let (width, height) = WINDOW;
        let mut options = json!({
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                // Docker gives /dev/shm 64 MB by default, too little for a renderer.
                "--disable-dev-shm-usage",
                format!("--window-size={width},{height}"),
                // The date-time field's segments are typed in en-US order (month first).
                "--lang=en-US",
            ],
        });
        if let Some(chrome) = executable(
            "CHROME",
            &[
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ],
        ) {
            options["binary"] = json!(chrome);
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "timeouts": {"pageLoad": COMMAND_TIMEOUT.as_millis() as u64, "script": 10_000, "implicit": 0},
        }}});
        let resp = http
            .post(format!("{}/session", driver.url))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver reachable");
        let value = answer(resp)
            .await
            .unwrap_or_else(|e| panic!("no browser session ({e:?}): {INSTALL_HINT}"));
        let session = value["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Self {
            http,
            session,
            driver,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.driver.url, self.session)
    }

    /// Sends one command; `body` None is a GET.
    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| WebDriverError {
            error: "unreachable".into(),
            message: e.to_string(),
        })?;
        answer(resp).await
    }

    async fn get(&self, path: &str) -> Value {
        self.command(reqwest::Method::GET, path, None)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e:?}"))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body))
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e:?}"))
    }

    /// Loads `url` and waits for the page.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn current_url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn refresh(&self) {
        self.post("/refresh", json!({})).await;
    }

    /// The first element matching the CSS selector, if the page has one now.
    pub async fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        match found {
            Ok(value) => Some(self.element(&value)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find {css}: {e:?}"),
        }
    }

    /// The first element matching the CSS selector; panics if there is none.
    pub async fn find(&self, css: &str) -> Element<'_> {
        match self.try_find(css).await {
            Some(element) => element,
            None => panic!("no element matches {css} at {}", self.current_url().await),
        }
    }

    /// The first element matching an XPath expression (for "the row that holds this link").
    pub async fn find_xpath(&self, xpath: &str) -> Option<Element<'_>> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "xpath", "value": xpath})),
            )
            .await;
        match found {
            Ok(value) => Some(self.element(&value)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find {xpath}: {e:?}"),
        }
    }

    /// Waits, polling, until the page has an element matching `css`.
    pub async fn wait_for(&self, css: &str, seconds: u64) -> Element<'_> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(element) = self.try_find(css).await {
                return element;
            }
            assert!(
                Instant::now() < deadline,
                "no element matched {css} within {seconds} s (at {})",
                self.current_url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn element(&self, value: &Value) -> Element<'_> {
        Element {
            browser: self,
            id: value[ELEMENT_KEY]
                .as_str()
                .expect("an element reference")
                .to_owned(),
        }
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns what
    /// it returns.
    pub async fn execute<T: DeserializeOwned>(&self, script: &str, args: Vec<Value>) -> T {
        let value = self
            .post("/execute/sync", json!({"script": script, "args": args}))
            .await;
        serde_json::from_value(value).unwrap_or_else(|e| panic!("script result: {e}"))
    }

    /// Presses each key in turn (down, up) wherever the focus is.
    pub async fn press(&self, keys: &[&str]) {
        let actions: Vec<Value> = keys
            .iter()
            .flat_map(|k| {
                [
                    json!({"type": "keyDown", "value": k}),
                    json!({"type": "keyUp", "value": k}),
                ]
            })
            .collect();
        self.post(
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await;
    }

    /// The value of the cookie named `name`, as the browser holds it (HttpOnly included).
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self.get("/cookie").await;
        cookies
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["value"].as_str())
            .map(str::to_owned)
    }

    /// Saves the window as a PNG at `path` (its folder made if missing).
    pub async fn screenshot(&self, path: &Path) {
        let png = self.get("/screenshot").await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 PNG"))
            .expect("valid base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, bytes).expect("screenshot written");
    }
}

impl Drop for Browser {
    /// Ends the session so chromedriver closes Chromium, then the driver is killed. Written
    /// as one blocking HTTP/1.1 request: `Drop` cannot await, and the driver is another
    /// process, so blocking this thread for it cannot deadlock.
    fn drop(&mut self) {
        let Some(addr) = self.driver.url.strip_prefix("http://") else {
            return;
        };
        let Ok(mut stream) = TcpStream::connect(addr) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.session
        );
        // The driver answers once the browser has closed; the answer's first bytes are
        // enough (it may keep the connection open whatever the request asked).
        if stream.write_all(request.as_bytes()).is_ok() {
            let _ = stream.read(&mut [0u8; 512]);
        }
    }
}

impl Element<'_> {
    fn url(&self, path: &str) -> String {
        format!("/element/{}{path}", self.id)
    }

    /// Types `text` into the element (focusing it first), as keystrokes.
    pub async fn send_keys(&self, text: &str) {
        self.browser
            .post(&self.url("/value"), json!({ "text": text }))
            .await;
    }

    pub async fn click(&self) {
        self.browser.post(&self.url("/click"), json!({})).await;
    }

    /// The rendered text, as a person reads it.
    pub async fn text(&self) -> String {
        let text = self.browser.get(&self.url("/text")).await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// The markup attribute `name`, if set.
    pub async fn attribute(&self, name: &str) -> Option<String> {
        let value = self
            .browser
            .get(&self.url(&format!("/attribute/{name}")))
            .await;
        value.as_str().map(str::to_owned)
    }

    /// The DOM property `name` (an input's current `value`, say).
    pub async fn property(&self, name: &str) -> Value {
        self.browser
            .get(&self.url(&format!("/property/{name}")))
            .await
    }

    /// The first element inside this one matching `css`.
    pub async fn find(&self, css: &str) -> Element<'_> {
        let value = self
            .browser
            .post(
                &self.url("/element"),
                json!({"using": "css selector", "value": css}),
            )
            .await;
        self.browser.element(&value)
    }
}

/// A command's `value`, or the error the driver named.
async fn answer(resp: reqwest::Response) -> Result<Value, WebDriverError> {
    let ok = resp.status().is_success();
    let body: Value = resp.json().await.map_err(|e| WebDriverError {
        error: "unreadable answer".into(),
        message: e.to_string(),
    })?;
    let value = body.get("value").cloned().unwrap_or(Value::Null);
    match ok {
        true => Ok(value),
        false => Err(WebDriverError {
            error: value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned(),
            message: value["message"].as_str().unwrap_or_default().to_owned(),
        }),
    }
}

/// The binary `$variable` names, else the first of `names` on `PATH`.
fn executable(variable: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Where the browser tests keep their screenshots: `target/e2e/screenshots/`, beside the
/// suite's logs.
pub fn screenshot_path(test: &str, step: &str) -> PathBuf {
    std::env::var_os("PARLEY_E2E_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| parley_local::env::repo_root().join("target/e2e"))
        .join("screenshots")
        .join(format!("{test}-{step}.png"))
}
