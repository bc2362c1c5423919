//! `tether ad decommission DOMAIN --plan | --apply`: retiring AD the clean way of the seeds'
//! transcript. `--apply` is non-interactive and resumable: each step checks the state first,
//! so a run interrupted anywhere can simply be started again. It never deletes a user.

use std::time::Duration;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::client::Client;
use crate::table;

pub async fn plan(c: &Client, domain_id: &str, as_json: bool) -> Result<()> {
    let p = c.get(&format!("/api/v2/activedirectories/{domain_id}/decommission")).await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&p)?);
        return Ok(());
    }
    println!("Domain:        {} ({})", p["domain"].as_str().unwrap_or(""), p["useCase"].as_str().unwrap_or(""));
    println!("Configuration: {}", p["configuration"].as_str().unwrap_or(""));
    println!("Users:         {} ({} restricted by this domain)", p["users"], p["restrictedUsers"]);
    println!("\nAgents still installed:");
    print!(
        "{}",
        table::render(
            p["agents"].as_array().map(Vec::as_slice).unwrap_or_default(),
            &["id", "agentType", "state", "paused", "hostname", "deletableAt"]
        )
    );
    let risk = p["usersAtRisk"].as_array().cloned().unwrap_or_default();
    println!("\nUsers who cannot log in once AD is gone ({}):", risk.len());
    print!("{}", table::render(&risk, &["username", "email", "reason"]));
    println!("\nSteps of --apply:");
    for (i, s) in p["steps"].as_array().cloned().unwrap_or_default().iter().enumerate() {
        println!("  {}. {}", i + 1, s.as_str().unwrap_or(""));
    }
    Ok(())
}

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("template"));
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Users still restricted by the domain (found by their restrictions, so this works after
/// the domain itself is gone).
async fn restricted_users(c: &Client, domain_id: &str) -> Result<Vec<Value>> {
    let all = c.all_users(&["externally_managed:$eq:true".to_string()]).await?;
    Ok(all
        .into_iter()
        .filter(|u| u["restrictedFields"].as_array().is_some_and(|r| r.iter().any(|f| f["id"] == domain_id)))
        .collect())
}

pub async fn apply(c: &Client, domain_id: &str) -> Result<()> {
    let base = format!("/api/v2/activedirectories/{domain_id}");
    let exists = c.get(&base).await.is_ok();
    if exists {
        // 1. Pause every running agent (import first, as the transcript does).
        let mut agents = c.all_v2(&format!("{base}/agents")).await?;
        agents.sort_by_key(|a| a["agentType"] != "IMPORT");
        for a in agents.iter().filter(|a| a["paused"] != true) {
            c.post(&format!("{base}/agents/{}/pause", a["id"].as_str().unwrap_or_default()), json!({})).await?;
            eprintln!("paused {} agent {}", a["agentType"].as_str().unwrap_or(""), a["id"].as_str().unwrap_or(""));
        }
        // 2. Wait out the grace and delete each agent (409 until its deletableAt).
        let pb = spinner("waiting for the agents' deletion grace");
        loop {
            let agents = c.all_v2(&format!("{base}/agents")).await?;
            if agents.is_empty() {
                break;
            }
            for a in &agents {
                let path = format!("{base}/agents/{}", a["id"].as_str().unwrap_or_default());
                if c.delete(&path).await.is_ok() {
                    pb.println(format!("deleted agent {}", a["id"].as_str().unwrap_or("")));
                }
            }
            pb.set_message(format!(
                "waiting for the deletion grace of {} agent(s) (deletable at {})",
                agents.len(),
                agents.iter().filter_map(|a| a["deletableAt"].as_str()).max().unwrap_or("?")
            ));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        pb.finish_and_clear();
        // 3. Delete the domain.
        c.delete(&base).await?;
        eprintln!("deleted the domain {domain_id}");
    } else {
        eprintln!("the domain {domain_id} is already deleted: resuming with the users");
    }
    // 4. One user first, verified; then the rest.
    let users = restricted_users(c, domain_id).await?;
    let pb = ProgressBar::new(users.len() as u64);
    pb.set_style(ProgressStyle::with_template("converting users {bar:30} {pos}/{len}").expect("template"));
    for (i, u) in users.iter().enumerate() {
        let id = u["id"].as_str().unwrap_or_default();
        c.put(&format!("/api/systemusers/{id}"), json!({"externally_managed": false})).await?;
        if i == 0 {
            let v = c.get(&format!("/api/systemusers/{id}")).await?;
            if v["externally_managed"] != false
                || v["restrictedFields"].as_array().is_some_and(|r| r.iter().any(|f| f["id"] == domain_id))
            {
                bail!("user {} is still restricted after conversion; stopping", v["username"]);
            }
            pb.println(format!(
                "converted {} and verified it; converting the others",
                v["username"].as_str().unwrap_or("")
            ));
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    // 5. The end state.
    let left = restricted_users(c, domain_id).await?;
    if !left.is_empty() || c.get(&base).await.is_ok() {
        bail!("not finished: {} user(s) still restricted by the domain", left.len());
    }
    eprintln!("done: the domain is gone and {} user(s) are plain Tether users; no user was deleted", users.len());
    Ok(())
}
