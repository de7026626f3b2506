//! `goldify check`: a recipe resolved and validated without a disk, and what publishing
//! would write checked against the command line `run` would be given.

use crate::publish::Request;
use crate::recipe::Recipe;
use anyhow::Result;
use serde::Serialize;
use std::path::Path;

/// `check --json` (docs/json.md): every key always present.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub recipe: String,
    pub name: String,
    pub steps: Vec<CheckedStep>,
    /// The targets a run with these options publishes to (the run manifest, which every
    /// publishing run writes, is not listed).
    pub publish: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CheckedStep {
    pub step: String,
    pub options: serde_json::Value,
    /// The `when:` condition, or null.
    pub when: Option<crate::recipe::When>,
    /// The recipe the step comes from.
    pub from: String,
}

pub struct CheckOptions<'a> {
    pub recipe: &'a Path,
    pub outdir: &'a Path,
    pub name: Option<&'a str>,
    pub format: Option<crate::disk::Format>,
    pub publish: &'a Request,
}

pub fn check(o: &CheckOptions) -> Result<CheckReport> {
    let mut recipe = Recipe::load_with(o.recipe, &o.publish.set)?;
    recipe.preflight()?;
    let steps = recipe
        .ordered()
        .iter()
        .map(|s| CheckedStep {
            step: s.name.clone(),
            options: serde_json::to_value(s.step.to_yaml()).unwrap_or_default(),
            when: s.when.clone(),
            from: s.origin.display().to_string(),
        })
        .collect();
    // A dry run's session: settings and destinations checked, nothing created.
    let planned = crate::run::plan(
        &mut recipe,
        &crate::run::Settings {
            disks: &[],
            outdir: o.outdir,
            name: o.name,
            format: o.format,
            dry_run: true,
            in_place: false,
            publish: o.publish,
        },
    )?;
    Ok(CheckReport {
        recipe: o.recipe.display().to_string(),
        name: recipe.name,
        steps,
        publish: planned.publish.map(|p| p.names()).unwrap_or_default(),
    })
}

impl CheckReport {
    pub fn print_human(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{}: recipe `{}` is valid, {} steps:",
            self.recipe,
            self.name,
            self.steps.len()
        )?;
        for s in &self.steps {
            let when = s
                .when
                .as_ref()
                .map(|w| format!("  (when {})", w.describe()))
                .unwrap_or_default();
            writeln!(out, "  {}{when}", s.step)?;
            if let serde_json::Value::Object(options) = &s.options {
                for (k, v) in options {
                    writeln!(out, "      {k}: {v}")?;
                }
            }
        }
        if !self.publish.is_empty() {
            writeln!(out, "publishes to: {}", self.publish.join(", "))?;
        }
        Ok(())
    }
}
